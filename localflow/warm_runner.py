"""F5 without the wait: run the debuggee forked from a process that has imported Airflow already.

VS Code's Python debugger starts the debuggee as ``PYTHON PYTHON_ARGS DEBUGPY --connect ... -m localflow
dag-test FILE``. The DAG configurations in ``.vscode/launch.json`` set ``"pythonArgs": ["-m",
"localflow.warm_runner"]``, so this module comes first and receives the rest of that command line. It hands
the command line, its environment, working folder and terminal (stdin, stdout and stderr, passed as file
descriptors) to the *warm runner*: a background process of the same interpreter that imported Airflow,
debugpy and localflow once. The runner forks; the fork runs the command line as Python would, so debugpy
connects back to the debug adapter (which takes the first debuggee that connects, whatever its PID) and
``dag-test`` finds Airflow imported. The fork's exit status becomes this process's; Ctrl-C and Stop are
passed on. A run then costs no interpreter start and no imports: it is the pattern of Android's zygote and
of Spring, the Rails application preloader.

The first F5 starts the runner and waits for its imports. The runner stops after ``LOCALFLOW_WARM_RUNNER_IDLE``
seconds without a run (default 1800), and is replaced as soon as what it imported may be out of date: another
interpreter or working folder, changed ``AIRFLOW*``/``LOCALFLOW*`` settings (``.env``, ``airflow.env``),
installed or removed packages, or edited localflow code. DAG files and ``plugins/`` are imported only in the
forks, so edits to them are seen on the next F5 without a restart.

``LOCALFLOW_WARM_RUNNER=off`` runs the command line directly, as if this module were not there; so does any
problem reaching the runner (said in one line), and a command line it does not handle.

    python -m localflow.warm_runner --stop     stop the runner of this environment
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

WARM_RUNNER = "LOCALFLOW_WARM_RUNNER"
IDLE = "LOCALFLOW_WARM_RUNNER_IDLE"
DEFAULT_IDLE = 1800.0
START_TIMEOUT = 120.0
PACKAGE = Path(__file__).resolve().parent
HEADER = struct.Struct("!I")  # length of the JSON message that follows
STDIO = (0, 1, 2)
# Interpreter options that take a value, and those that do not (python --help); any other option makes
# the client run the command line directly.
OPTIONS_WITH_VALUE = {"-X", "-W"}
FROZEN_MODULES_OFF = ["-X", "frozen_modules=off"]
FLAG_OPTIONS = {"-b", "-bb", "-B", "-d", "-E", "-O", "-OO", "-q", "-s", "-S", "-u", "-v"}

# What every debug run imports, so the runner imports it first. Anything missing here is only imported
# by each run again; nothing breaks.
PRELOAD_MODULES = (
    "localflow.__main__",
    "localflow.dagtest",
    "localflow.debug",
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


class Unavailable(Exception):
    """The runner cannot take this command line; it runs directly instead."""


# --- what a runner is for ----------------------------------------------------------------------------


def split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split ``python``'s arguments into interpreter options and the target (script or ``-m``) with its args."""
    options: list[str] = []
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        option = argv[index]
        if option == "-m":
            if index + 1 == len(argv):
                raise Unavailable("no module to run")
            return options, argv[index:]
        if option in OPTIONS_WITH_VALUE and index + 1 < len(argv):
            options += argv[index : index + 2]
            index += 2
        elif option in FLAG_OPTIONS or option[:2] in OPTIONS_WITH_VALUE:
            options.append(option)
            index += 1
        else:
            raise Unavailable(f"interpreter option {option} is not handled")
    if index == len(argv):
        raise Unavailable("no script or module to run")
    return options, argv[index:]


def runner_options(options: list[str]) -> list[str]:
    """The interpreter options a runner starts with: the run's, always with frozen modules off.

    debugpy adds ``-X frozen_modules=off`` (https://github.com/microsoft/debugpy/issues/861) for F5 but
    not for Ctrl+F5; with it always on, both share one runner.
    """
    pairs = [options[index : index + 2] for index in range(len(options) - 1)]
    if FROZEN_MODULES_OFF in pairs:
        at = pairs.index(FROZEN_MODULES_OFF)
        options = options[:at] + options[at + 2 :]
    return [*FROZEN_MODULES_OFF, *options]


def airflow_environment(env: dict[str, str]) -> dict[str, str]:
    """The environment ``dag-test`` runs Airflow with (localflow's settings applied), as the runner imports it."""
    from localflow import settings

    if settings.IN_CONTAINER:
        return dict(env)
    return settings.native_environment(base=env)


def _stat(path: Path) -> tuple[str, int, int]:
    try:
        status = path.stat()
    except OSError:
        return (str(path), 0, 0)
    return (str(path), status.st_mtime_ns, status.st_size)


def fingerprint(options: list[str], airflow_env: dict[str, str], cwd: str) -> str:
    """What the runner's imports depend on; a runner with another fingerprint is out of date.

    ``airflow_env``: the environment with localflow's settings applied (``airflow_environment``).
    """
    import site

    settings = {
        key: value
        for key, value in airflow_env.items()
        if key.startswith(("AIRFLOW", "LOCALFLOW", "PYTHONPATH")) and not key.startswith(WARM_RUNNER)
    }
    package_dirs = [*site.getsitepackages(), site.getusersitepackages()]
    state = {
        "python": [sys.executable, sys.version, options],
        "cwd": os.path.realpath(cwd),
        "settings": sorted(settings.items()),
        # Installing or removing a package changes its site-packages folder.
        "packages": [_stat(Path(folder)) for folder in package_dirs],
        "localflow": [_stat(path) for path in sorted(PACKAGE.glob("*.py"))],
    }
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()


def runtime_dir() -> Path:
    """Where runners keep their sockets and logs: private to this user."""
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    folder = Path(base) / f"localflow-warm-runner-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        raise Unavailable(f"{folder} is not private to this user")
    return folder


def runner_paths(airflow_env: dict[str, str], cwd: str) -> tuple[Path, Path]:
    """The socket and log of the runner for this interpreter, working folder and Airflow home.

    ``airflow_env``: the environment with localflow's settings applied (``airflow_environment``).
    """
    home = airflow_env.get("AIRFLOW_HOME", "")
    key = hashlib.sha256(f"{sys.executable}\0{os.path.realpath(cwd)}\0{home}".encode()).hexdigest()[:16]
    folder = runtime_dir()
    return folder / f"{key}.sock", folder / f"{key}.log"


# --- messages: a length-prefixed JSON object, the first one of a request carrying stdin/out/err -------


def send_message(sock: socket.socket, message: dict, fds: tuple[int, ...] = ()) -> None:
    """Send ``message``, with ``fds`` attached to its first bytes (SCM_RIGHTS)."""
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [HEADER.pack(len(data))], list(fds))
        sock.sendall(data)
    else:
        sock.sendall(HEADER.pack(len(data)) + data)


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def receive_message(sock: socket.socket, max_fds: int = 0) -> tuple[dict, list[int]]:
    """Receive one message and the file descriptors attached to it (now open in this process)."""
    if max_fds:
        header, fds, _flags, _address = socket.recv_fds(sock, HEADER.size, max_fds)
        if len(header) < HEADER.size:
            header += _receive_exactly(sock, HEADER.size - len(header))
    else:
        header, fds = _receive_exactly(sock, HEADER.size), []
    (size,) = HEADER.unpack(header)
    return json.loads(_receive_exactly(sock, size)), fds


# --- the client: what VS Code's launcher starts -------------------------------------------------------


def run_directly(argv: list[str]) -> None:
    """Replace this process with the command line as it would have run without the runner."""
    os.execv(sys.executable, [sys.executable, *argv])


def connect(socket_path: Path) -> socket.socket | None:
    """A connection to the runner listening at ``socket_path``, or None if none does."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(socket_path))
    except OSError:
        client.close()
        return None
    return client


def start_runner(options: list[str], socket_path: Path, log_path: Path, expected: str) -> socket.socket:
    """Start a runner in the background, in its own session, and wait until it accepts runs."""
    import subprocess

    print(
        "localflow: starting the warm debug runner (once; later runs skip Airflow's imports) ...",
        file=sys.stderr,
        flush=True,
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its forks write straight to the user's terminal
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, *options, "-m", "localflow.warm_runner", "--serve", str(socket_path), expected],
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
        time.sleep(0.05)
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
        client = connect(socket_path) or start_runner(options, socket_path, log_path, expected)
        send_message(client, request, STDIO)
        try:
            reply, _ = receive_message(client)
        except (EOFError, OSError):
            reply = {}
        if "pid" in reply:
            return client, reply["pid"]
        client.close()
        if reply.get("stale"):  # that runner exits; the next attempt starts a fresh one
            print(
                "localflow: settings, packages or localflow changed: restarting the warm debug runner",
                file=sys.stderr,
                flush=True,
            )
    raise Unavailable("the runner did not accept the run")


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


def client_main(argv: list[str]) -> int:
    """Run ``python ARGV`` in the warm runner, or directly when it cannot."""
    if not hasattr(socket, "send_fds"):  # Windows: no file descriptors to pass
        run_directly(argv)
    try:
        from localflow import bootstrap

        if not bootstrap.in_prepared_environment():
            raise Unavailable("this interpreter is not the workspace's")
        from localflow import settings

        airflow_env = airflow_environment(dict(os.environ))  # .env read once, here
        if airflow_env.get(WARM_RUNNER, "").strip().lower() in settings.OFF_WORDS:
            run_directly(argv)
        session, pid = open_session(argv, airflow_env)
    except Exception as error:  # the run itself must happen whatever went wrong here
        from localflow.errors import LocalflowError

        if not isinstance(error, LocalflowError):  # (a bad .env: dag-test says what is wrong, clearly)
            print(f"localflow: running without the warm debug runner: {error}", file=sys.stderr, flush=True)
        run_directly(argv)
    return relay(session, pid)


# --- the runner ---------------------------------------------------------------------------------------


def preload() -> None:
    """Import what every debug run needs, with localflow's Airflow environment, then freeze it for forks."""
    import gc
    import importlib

    os.environ.update(airflow_environment(dict(os.environ)))
    for module in PRELOAD_MODULES:
        importlib.import_module(module)
    gc.freeze()  # the collector leaves these objects alone, so forks share their pages


def peer_is_us(connection: socket.socket) -> bool:
    """Only this user's processes may run code here (the socket's folder is private too)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return uid == os.getuid()


def serve(socket_path: Path, own_fingerprint: str) -> int:
    """Accept runs until idle for too long or out of date; each run is handled in a fork."""
    preload()
    idle_limit = float(os.environ.get(IDLE) or DEFAULT_IDLE)
    socket_path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    os.chmod(socket_path, 0o600)
    own_socket = socket_path.stat().st_ino

    def retire(reason: str) -> None:
        # Unlink only our own socket file: a replacement may have bound the path already.
        if _inode(socket_path) == own_socket:
            socket_path.unlink(missing_ok=True)
        print(f"localflow warm runner {os.getpid()}: {reason}: exiting", flush=True)

    listener.listen()
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
        if len(fds) != len(STDIO):
            return 0
        pid = os.fork()
        if pid == 0:
            listener.close()
            connection.settimeout(None)
            os._exit(keep_session(connection, request, fds))
        return pid
    except (EOFError, OSError, ValueError) as error:
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
    import atexit
    import runpy
    import threading
    import traceback

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
    code: object = 0
    try:
        if target[0] == "-m":
            sys.argv = [target[1], *target[2:]]
            sys.path[0] = os.getcwd()
            runpy._run_module_as_main(target[1], alter_argv=True)  # what `python -m` runs
        else:
            script = os.path.abspath(target[0])
            sys.argv = [target[0], *target[1:]]
            sys.path[0] = script if os.path.isdir(script) else os.path.dirname(script)
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exit_request:
        code = exit_request.code
    except BaseException:  # as the interpreter would: print it, exit 1
        traceback.print_exc()
        code = 1
    # What the interpreter does at exit: wait for threads, run exit handlers, flush.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return code


def stop(env: dict[str, str], cwd: str) -> bool:
    """Ask the runner of this environment to exit; False if none was running."""
    socket_path, _log = runner_paths(airflow_environment(env), cwd)
    client = connect(socket_path)
    if client is None:
        return False
    with client:
        send_message(client, {"stop": True})
        with contextlib.suppress(EOFError, OSError):
            receive_message(client)
    return True


def main(argv: list[str]) -> int:
    """The client (what launch.json runs), ``--serve`` (the runner itself) or ``--stop``."""
    if argv[:1] == ["--serve"]:
        return serve(Path(argv[1]), argv[2])
    if argv == ["--stop"]:
        stopped = stop(dict(os.environ), os.getcwd())
        print("localflow: warm debug runner " + ("stopped" if stopped else "was not running"))
        return 0
    return client_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
