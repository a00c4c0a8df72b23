"""``python -m localflow up``: check the port, prepare the workspace, then become the supervisor.

Preparing is ``secrets.prepare`` (the same as compose's ``airflow-init``); supervising is ``supervisor.py``,
which this process becomes in place (same PID) with exactly the prepared environment.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import urllib.parse
from pathlib import Path

from localflow.config import remote_logs, settings
from localflow.errors import LocalflowError
from localflow.secrets.prepare import prepare
from localflow.stack import disk, ownership
from localflow.stack.supervisor import STOP_SIGNALS, SUPERVISE, log_max_bytes, stall_timeout, worker_count
from localflow.stopping import RememberedInterrupt


def port_is_free(host: str, port: int) -> bool:
    """True when the api-server (uvicorn) could bind the port: it binds with SO_REUSEADDR, so connections
    of a stack that just stopped (TIME_WAIT for about 60 s) do not count, as they would for a plain bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def check_port_free(host: str, port: int, setting: str) -> None:
    """Refuse to start anything when a port we need is taken, rather than half-start the stack; name a
    free port to use instead, as the command that uses it (on a fresh clone there is no .env to edit)."""
    if port_is_free(host, port):
        return
    instead = next(
        (free for free in range(port + 1, min(port + 100, 65536)) if port_is_free(host, free)), None
    )
    fix = (
        f"use a free port: {setting}={instead} python3 -m localflow up (or the line {setting}={instead} in "
        ".env, which wins over the shell)"
        if instead
        else f"set {setting} to a free port in .env"
    )
    raise LocalflowError(
        f"port {port} on {host} is already in use (another Airflow?); stop that process, or {fix}."
    )


def preflight(env: dict[str, str], workspace: Path) -> None:
    """Check the ports, what the CeleryExecutor needs, and that remote task logs can work if they are on,
    before anything starts."""
    check_port_free(settings.api_host(env), int(env["AIRFLOW__API__PORT"]), "AIRFLOW__API__PORT")
    log_max_bytes(env)
    stall_timeout(env)
    if settings.uses_celery(env):
        check_celery(env)
    remote_logs.check_installed(env, in_container=False)
    if remote_logs.uses_local_server(env, workspace / settings.SETTINGS_FILE_NAME):
        port = env[remote_logs.PORT_SETTING]
        if not port.isdigit():
            raise LocalflowError(f"{remote_logs.PORT_SETTING}={port!r} is not a port number; fix it in .env.")
        check_port_free("127.0.0.1", int(port), remote_logs.PORT_SETTING)


def check_celery(env: dict[str, str]) -> None:
    """The CeleryExecutor's workers are other processes writing to the same database: not SQLite's."""
    if env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite"):
        raise LocalflowError(
            "the CeleryExecutor needs PostgreSQL: set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="
            "postgresql+psycopg2://... in .env, or remove COMPOSE_PROFILES=celery (docs/celery.md)."
        )
    worker_count(env)
    broker = urllib.parse.urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    try:
        socket.create_connection((broker.hostname or "127.0.0.1", broker.port or 6379), timeout=5).close()
    except OSError as error:
        raise LocalflowError(
            f"cannot reach the Celery broker (Redis) at {broker.hostname}:{broker.port or 6379}: "
            f"{error.strerror or error}; start it, or set AIRFLOW__CELERY__BROKER_URL in .env."
        ) from None


def stop_leftovers(last_stack: dict) -> None:
    """End what the last stack left running when its supervisor died without stopping it (SIGKILL)."""
    leftovers = ownership.processes_of(last_stack["id"]) if last_stack.get("id") else []
    if leftovers:
        pids = ownership.end(leftovers, timeout=10)
        print(
            f"localflow: stopped {len(pids)} processes left running by the last stack, whose supervisor "
            f"(PID {last_stack.get('pid', '?')}) ended without stopping them: {', '.join(map(str, pids))}",
            flush=True,
        )


def refresh_warm_runner(shell_environment: dict[str, str], workspace: Path) -> None:
    """A warm debug runner already running for F5 follows what preparing wrote (.env's new secrets)."""
    from localflow.debugging.warm_runner import client, protocol

    try:
        said = client.refresh(shell_environment, str(workspace))
    except (protocol.Unavailable, LocalflowError, OSError) as error:  # F5 then starts its own
        said = f"the warm debug runner could not be refreshed: {error}"
    if said:
        print(f"localflow: {said}", flush=True)


def up(env: dict[str, str], workspace: Path = settings.WORKSPACE) -> int:
    """Check the ports, prepare the workspace, then become the supervisor of the components.

    ``env``: the native environment the command computed (``settings.native_environment``).
    """
    if settings.IN_CONTAINER:
        raise LocalflowError("`up` runs Airflow natively; in the dev container the stack is already running.")
    shell_environment = dict(os.environ)  # what a warm debug runner started from here gets (F5's)
    # Airflow imported while preparing (the settings checks) must see the workspace's AIRFLOW_HOME, or it
    # writes a default airflow.cfg into ~/airflow.
    settings.use_environment(env)
    # Before the lock, which writes into .airflow; the migration and the first heartbeats would fail too.
    if full := disk.find_full(env, disk.FREED_AT):
        raise LocalflowError(
            f"{full.where(Path(env['AIRFLOW_HOME']))} Free at least {disk.size(disk.FREED_AT)} there, then "
            'start again (docs/logs.md, "A full disk").'
        )
    # Ctrl-C stops every phase of a start, as it stops the supervisor.
    interrupt = RememberedInterrupt()
    # First the lock: a second `up` stops here, before it could write .env or the database.
    lock_fd, last_stack = ownership.acquire(Path(env["AIRFLOW_HOME"]))
    try:
        return _prepare_and_supervise(
            workspace, env, lock_fd, last_stack, interrupt=interrupt, shell_environment=shell_environment
        )
    except BaseException as error:
        ownership.discard_unused(Path(env["AIRFLOW_HOME"]), lock_fd)  # a failed start leaves nothing
        if interrupt and isinstance(error, LocalflowError):  # e.g. the migration the same Ctrl-C ended
            raise KeyboardInterrupt from error
        raise


def _prepare_and_supervise(
    workspace: Path,
    env: dict[str, str],
    lock_fd: int,
    last_stack: dict,
    *,
    interrupt: RememberedInterrupt,
    shell_environment: dict[str, str],
) -> int:
    stop_leftovers(last_stack)
    preflight(env, workspace)
    database = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split(":", 1)[0]
    print(f"localflow: preparing {workspace} (database: {database}) ...", flush=True)
    # The components need what prepare() may just have created: on a fresh clone .env (the secrets) did
    # not exist when the environment above was computed. The supervisor starts afresh (same PID) with
    # exactly that environment, so the Airflow it imports for its components is configured by it alone.
    prepared = prepare(workspace, env)
    refresh_warm_runner(shell_environment, workspace)
    # Forked components rename themselves ("airflow scheduler"); within argv's space, so that their
    # environment stays readable in /proc/PID/environ (setproctitle would write its title over it).
    prepared["SPT_NOENV"] = "1"
    stack_id = ownership.new_stack_id()
    ownership.record(lock_fd, stack_id)
    prepared.update({ownership.STACK_ID: stack_id, ownership.LOCK_FD: str(lock_fd), settings.PREPARED: "1"})
    sys.stdout.flush()
    if interrupt:  # a Ctrl-C that code run while preparing swallowed
        raise KeyboardInterrupt
    # Ctrl-C and SIGTERM are held across the execve and handled by the supervisor once it can stop
    # cleanly; Python's own handler would otherwise take one that arrives during the call and lose it.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    os.execve(sys.executable, [sys.executable, "-m", "localflow", "up", SUPERVISE], prepared)
    return 1  # not reached
