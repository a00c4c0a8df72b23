"""The warm runner itself: a background process that imported Airflow once and forks a process per run.

Each accepted run is handled in a fork (``keep_session``) that forks the run itself (``run_command``):
the run becomes the process ``python ARGV`` would have been, in its own process group, with the client's
terminal. The runner exits after ``LOCALFLOW_WARM_RUNNER_IDLE`` seconds without a run, when its socket
is taken over by a replacement, or when a client brings a newer fingerprint.
"""

from __future__ import annotations

import contextlib
import gc
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from localflow.config import settings
from localflow.debugging.warm_runner.protocol import (
    STDIO,
    airflow_environment,
    peer_is_us,
    receive_message,
    run_as_main,
    send_message,
    split_command,
)

IDLE = "LOCALFLOW_WARM_RUNNER_IDLE"
DEFAULT_IDLE = 1800.0
# What every debug run imports, so the runner imports it first. Anything missing here is only imported
# by each run again; nothing breaks.
PRELOAD_MODULES = (
    "localflow.__main__",
    "localflow.debugging.dagtest",
    "localflow.debugging.support",
    "airflow.sdk",
    "airflow.dag_processing.dagbag",
    "airflow.api_fastapi.common.exceptions",
    "airflow.api_fastapi.execution_api.app",
    "airflow.api_fastapi.execution_api.routes",
    "airflow.sdk.execution_time.supervisor",
    "airflow.sdk.execution_time.task_runner",
    "airflow.sdk.listener",
    "airflow.utils.db",
    "fastapi.testclient",
    "debugpy.server.cli",
)


def preload() -> None:
    """Import what every debug run needs, with localflow's Airflow environment, then freeze it for forks."""
    import importlib

    settings.use_environment(airflow_environment(dict(os.environ)))  # without what the shell set in vain
    for module in PRELOAD_MODULES:
        importlib.import_module(module)
    # A run executes `python -m localflow`: with localflow.__main__ already in sys.modules, runpy would
    # warn ("found in sys.modules ... unpredictable behaviour") in every F5. What it imports stays loaded.
    for name in [name for name in sys.modules if name.endswith(".__main__")]:
        del sys.modules[name]
    describe_environment_only_when_logged()
    gc.freeze()  # the collector leaves these objects alone, so forks share their pages


def describe_environment_only_when_logged() -> None:
    """Have the forks' debugpy describe the environment only when one of its logs would keep it.

    debugpy's server builds its "environment" log entry (the metadata of every installed package, some
    200 here) twice per start, once before it connects and once after the editor configured it, the
    second time traced: measured 0.4-0.5 s of a warm F5's 2.1 s, even with no log to write it to (its
    default logging keeps warnings and errors only). With a log that keeps ``info`` (launch.json's
    ``"logToFile": true``, ``DEBUGPY_LOG_DIR``) the entry is written as before.
    """
    from debugpy.common import log

    describe_environment = log.describe_environment

    def when_logged(header: str) -> None:
        if "info" in log._levels:  # the levels some open log keeps
            describe_environment(header)

    log.describe_environment = when_logged


def serve(socket_path: Path, own_fingerprint: str) -> int:
    """Accept runs until idle for too long or out of date; each run is handled in a fork.

    The socket listens before the imports: a client that comes meanwhile (F5 right after ``--start``)
    waits in the backlog for this runner instead of starting another one.
    """
    idle_limit = float(os.environ.get(IDLE) or DEFAULT_IDLE)
    socket_path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    os.chmod(socket_path, 0o600)
    own_socket = socket_path.stat().st_ino
    listener.listen()
    print(f"localflow warm runner {os.getpid()}: importing Airflow ...", flush=True)
    preload()

    def retire(reason: str) -> None:
        # Unlink only our own socket file: a replacement may have bound the path already.
        if _inode(socket_path) == own_socket:
            socket_path.unlink(missing_ok=True)
        print(f"localflow warm runner {os.getpid()}: {reason}: exiting", flush=True)

    listener.settimeout(1.0)
    print(f"localflow warm runner {os.getpid()}: ready on {socket_path}", flush=True)
    sessions: set[int] = set()
    last_activity = time.monotonic()
    with listener:
        while True:
            sessions = {pid for pid in sessions if os.waitpid(pid, os.WNOHANG) == (0, 0)}
            if sessions:
                last_activity = time.monotonic()
            elif time.monotonic() - last_activity > idle_limit:
                retire(f"idle for {idle_limit:.0f} s")
                return 0
            if _inode(socket_path) != own_socket:
                retire("replaced")
                return 0
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                session = answer(connection, own_fingerprint, listener, retire)
            if session is None:
                return 0
            if session:
                sessions.add(session)
                last_activity = time.monotonic()


def answer(
    connection: socket.socket, own_fingerprint: str, listener: socket.socket, retire: Callable[[str], None]
) -> int | None:
    """Handle one request: fork a session for a run (its PID), 0 for a bad request, None to exit."""
    fds: list[int] = []
    try:
        connection.settimeout(10)
        request, fds = receive_message(connection, max_fds=len(STDIO))
        if not peer_is_us(connection):
            return 0
        if request.get("stop") or request.get("fingerprint") != own_fingerprint:
            retire("stop requested" if request.get("stop") else "out of date")  # before the client
            send_message(connection, {"stale": True})  # starts a replacement
            return None
        if request.get("check"):  # `--start` asks whether this runner will do
            send_message(connection, {"ready": os.getpid()})
            return 0
        if len(fds) != len(STDIO):
            return 0
        pid = os.fork()
        if pid == 0:
            listener.close()
            connection.settimeout(None)
            os._exit(keep_session(connection, request, fds))
        return pid
    except (EOFError, OSError, ValueError) as error:
        # EOF or a broken pipe: a client that only checked the runner listens, or gave up waiting (--start)
        if not isinstance(error, (EOFError, BrokenPipeError)):
            print(f"localflow warm runner: a request failed: {error!r}", flush=True)
        return 0
    finally:
        for fd in fds:
            os.close(fd)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def keep_session(connection: socket.socket, request: dict, fds: list[int]) -> int:
    """In a fork of the runner: start the run in its own fork, then report its end to the client.

    If the client goes away first (VS Code's Stop kills it), the run and its children are stopped.
    """
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    pid = os.fork()
    if pid == 0:
        connection.close()
        os._exit(run_command(request, fds))
    send_message(connection, {"pid": pid})
    while True:
        readable, _, _ = select.select([connection], [], [], 0.05)
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            code = os.waitstatus_to_exitcode(status)
            send_message(connection, {"exit": code if code >= 0 else 128 - code})
            return 0
        if readable and not connection.recv(1):  # the client is gone
            stop_process_group(pid)
            return 0


def stop_process_group(pgid: int) -> None:
    """Kill the run and what it started, as debugpy's launcher kills a debuggee's process group on Stop."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    os.waitpid(pgid, 0)


def run_command(request: dict, fds: list[int]) -> int:
    """In the run's fork: become the process ``python ARGV`` would have been, run, and exit like it."""
    os.setpgid(0, 0)  # its own group, so that Stop reaches the processes it starts too
    for target, fd in zip(STDIO, fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    _options, target = split_command(request["argv"])
    return run_as_main(target)
