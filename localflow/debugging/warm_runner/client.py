"""The warm runner's client: what VS Code's launcher starts in place of the debuggee.

It hands the command line, environment, working folder and terminal to an up-to-date runner (starting
or replacing it), relays Ctrl-C and Stop to the run, and exits with the run's status. Anything that keeps
it from reaching a runner makes it run the command line directly, with one line saying why.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from localflow.debugging.warm_runner.protocol import (
    STDIO,
    WARM_RUNNER,
    Unavailable,
    airflow_environment,
    fingerprint,
    peer_is_us,
    receive_message,
    runner_options,
    runner_paths,
    send_message,
    split_command,
    workspace_runners,
)

START_TIMEOUT = 120.0
CHECK_TIMEOUT = 1.0  # a runner that has done its imports answers `--start` at once


DIRECT = "--direct"  # `python -m localflow.debugging.warm_runner --direct TARGET`: run_directly's process


def run_directly(argv: list[str]) -> None:
    """Replace this process with the command line as it would have run without the runner.

    It runs as in a runner's fork (``protocol.run_as_main``, through ``DIRECT``), its exit status caught
    above debugpy's frames: a failed run then ends after one Continue, with the runner or without.
    """
    try:
        options, target = split_command(argv)
    except Unavailable:  # a command line the runner could not run either: as it is
        os.execv(sys.executable, [sys.executable, *argv])
    os.execv(
        sys.executable, [sys.executable, *options, "-m", "localflow.debugging.warm_runner", DIRECT, *target]
    )


def connect(socket_path: Path) -> socket.socket | None:
    """A connection to the runner listening at ``socket_path``, or None if none does.

    The runner gets this terminal and runs what it is sent: it must be this user's, as the runner checks
    its clients (``Unavailable`` otherwise).
    """
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(socket_path))
    except OSError:
        client.close()
        return None
    if not peer_is_us(client):
        client.close()
        raise Unavailable(f"{socket_path} is served by another user's process")
    return client


@contextlib.contextmanager
def starting_alone(socket_path: Path) -> Iterator[None]:
    """Hold this runner's start lock: F5 and ``--start`` at the same moment start one runner, not two."""
    import fcntl

    with open(socket_path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def start_runner(
    options: list[str], socket_path: Path, log_path: Path, expected: str, env: dict[str, str]
) -> socket.socket:
    """Start a runner with ``env`` in the background, in its own session, and connect to it.

    It listens before its imports, so this returns in a fraction of a second; a request sent on the
    connection is answered once the imports are done.
    """
    import subprocess

    env = {**env, "PYTHONUNBUFFERED": "1"}  # its forks write straight to the user's terminal
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                *options,
                "-m",
                "localflow.debugging.warm_runner",
                "--serve",
                str(socket_path),
                expected,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            last = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise Unavailable(f"the runner exited ({last[0]}; log: {log_path})")
        if (client := connect(socket_path)) is not None:
            return client
        time.sleep(0.02)
    process.kill()
    raise Unavailable(f"the runner did not start within {START_TIMEOUT:.0f} s (log: {log_path})")


def open_session(argv: list[str], airflow_env: dict[str, str]) -> tuple[socket.socket, int]:
    """Connect to an up-to-date runner (starting or replacing it) and hand it this command line.

    Returns the connection, on which the run's exit status arrives, and the run's PID. The run gets this
    process's own environment; ``airflow_env`` (localflow's settings applied) only picks the runner.
    """
    options = runner_options(split_command(argv)[0])
    cwd = os.getcwd()
    expected = fingerprint(options, airflow_env, cwd)
    socket_path, log_path = runner_paths(airflow_env, cwd)
    request = {"fingerprint": expected, "argv": argv, "env": dict(os.environ), "cwd": cwd}
    for _attempt in range(2):
        with starting_alone(socket_path):
            client = connect(socket_path)
            if client is None:
                print(
                    "localflow: starting the warm debug runner (once; later runs skip Airflow's imports) ...",
                    file=sys.stderr,
                    flush=True,
                )
                client = start_runner(options, socket_path, log_path, expected, dict(os.environ))
        send_message(client, request, STDIO)
        client.settimeout(START_TIMEOUT)  # a runner still importing answers when it is done
        try:
            reply, _ = receive_message(client)
        except (EOFError, OSError):
            reply = {}
        client.settimeout(None)
        if "pid" in reply:
            return client, reply["pid"]
        client.close()
        if reply.get("stale"):  # that runner exits; the next attempt starts a fresh one
            print(
                "localflow: settings, packages or localflow changed: restarting the warm debug runner",
                file=sys.stderr,
                flush=True,
            )
    raise Unavailable(f"the runner did not accept the run (log: {log_path})")


def relay(session: socket.socket, pid: int) -> int:
    """Pass Ctrl-C and termination on to the run, and return its exit status as this process's."""

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        reply, _ = receive_message(session)
    except (EOFError, OSError):
        print("localflow: the warm debug runner went away during the run", file=sys.stderr, flush=True)
        return 1
    return reply["exit"]


def turned_off(airflow_env: dict[str, str]) -> bool:
    """``LOCALFLOW_WARM_RUNNER=off`` (or another word for off) in the settings F5 runs with."""
    from localflow.config import registry

    return not registry.switch(airflow_env, WARM_RUNNER)


def client_main(argv: list[str]) -> int:
    """Run ``python ARGV`` in the warm runner, or directly when it cannot."""
    if not hasattr(socket, "send_fds"):  # Windows: no file descriptors to pass
        run_directly(argv)
    try:
        from localflow import bootstrap

        if not bootstrap.in_prepared_environment():
            raise Unavailable("this interpreter is not the workspace's")
        airflow_env = airflow_environment(dict(os.environ))  # .env read once, here
        if turned_off(airflow_env):
            run_directly(argv)
        session, pid = open_session(argv, airflow_env)
    except Exception as error:  # the run itself must happen whatever went wrong here
        from localflow.errors import LocalflowError

        if not isinstance(error, LocalflowError):  # (a bad .env: dag-test says what is wrong, clearly)
            print(f"localflow: running without the warm debug runner: {error}", file=sys.stderr, flush=True)
        run_directly(argv)
    return relay(session, pid)


def stop(env: dict[str, str], cwd: str) -> int:
    """Ask the runners of this working folder and Airflow home to exit, whichever interpreter runs them
    (F5's, not necessarily this one); how many were running."""
    stopped = 0
    for socket_path in workspace_runners(airflow_environment(env), cwd):
        client = connect(socket_path)
        if client is None:  # a runner that went away without removing its socket
            continue
        with client:
            send_message(client, {"stop": True})
            with contextlib.suppress(EOFError, OSError):
                receive_message(client)
        stopped += 1
    return stopped


def debug_session_environment(env: dict[str, str], cwd: str, *, in_container: bool) -> dict[str, str]:
    """The environment VS Code gives F5's debuggee: ``env`` with the workspace's ``.env`` over it.

    VS Code's Python debugger adds ``python.envFile`` (by default ``${workspaceFolder}/.env``). Natively that
    changes nothing, as ``dag-test`` puts .env over the environment anyway; in the dev container the
    environment is used as it is, so a runner started without .env's values would be out of date for F5.
    """
    env_file = Path(cwd) / ".env"
    if not in_container or not env_file.exists():
        return dict(env)
    from localflow.config import envfile

    return {**env, **envfile.load(env_file)}


def start(env: dict[str, str], cwd: str) -> str:
    """Have an up-to-date runner for F5 in ``cwd`` running, or starting: returns without waiting for its
    imports, and says in one line what it found. ``env``: what F5's debuggee gets
    (``debug_session_environment``). Raises ``Unavailable`` when no runner can start."""
    airflow_env = airflow_environment(env)
    if turned_off(airflow_env):
        return f"warm debug runner not started: {WARM_RUNNER} is off"
    options = runner_options([])  # what F5's `-X frozen_modules=off` becomes
    expected = fingerprint(options, airflow_env, cwd)
    socket_path, log_path = runner_paths(airflow_env, cwd)
    with starting_alone(socket_path):
        runner = connect(socket_path)
        if runner is not None:
            with runner:
                runner.settimeout(CHECK_TIMEOUT)
                try:
                    send_message(runner, {"fingerprint": expected, "check": True})
                    reply, _ = receive_message(runner)
                except TimeoutError:  # still importing: it is the one F5 will use
                    return f"the warm debug runner is starting (log: {log_path})"
                except (EOFError, OSError):
                    reply = {}
            if "ready" in reply:
                return f"the warm debug runner is running (PID {reply['ready']})"
        start_runner(options, socket_path, log_path, expected, env).close()
    return f"starting the warm debug runner in the background (log: {log_path})"


def refresh(env: dict[str, str], cwd: str) -> str | None:
    """Bring this interpreter's runner up to date if one runs, in the background; what happened, or None.

    For ``up``, which may just have written ``.env`` (a fresh clone's first start): the runner started at
    folder open would otherwise be out of date, and the first F5 would wait for a new one. Starts nothing
    where no runner runs (it would cost its memory for nothing).
    """
    airflow_env = airflow_environment(env)
    if turned_off(airflow_env):
        return None
    socket_path, _ = runner_paths(airflow_env, cwd)
    runner = connect(socket_path)
    if runner is None:
        return None
    runner.close()  # a connection that sends nothing: the runner takes it for a check
    said = start(env, cwd)
    return said if said.startswith("starting") else None
