"""What the warm runner's client and server agree on: which runner serves a command line, and the messages.

A runner is picked by interpreter, working folder and Airflow home (``runner_paths``), and is up to date
while its ``fingerprint`` matches. Messages are length-prefixed JSON; the first one of a request carries
the client's stdin, stdout and stderr (SCM_RIGHTS). Standard library only, plus localflow's settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import struct
import sys
import tempfile
from pathlib import Path

WARM_RUNNER = "LOCALFLOW_WARM_RUNNER"
# localflow's code: a runner that imported an older version of it is out of date.
LOCALFLOW_PACKAGE = Path(__file__).resolve().parents[2]
HEADER = struct.Struct("!I")  # length of the JSON message that follows
STDIO = (0, 1, 2)
# Interpreter options that take a value, and those that do not (python --help); any other option makes
# the client run the command line directly.
OPTIONS_WITH_VALUE = {"-X", "-W"}
FROZEN_MODULES_OFF = ["-X", "frozen_modules=off"]
FLAG_OPTIONS = {"-b", "-bb", "-B", "-d", "-E", "-O", "-OO", "-q", "-s", "-S", "-u", "-v"}


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


def run_as_main(target: list[str]) -> int:
    """Run ``target`` (a script or ``-m MODULE``, with its arguments) in this process as ``python TARGET``
    would, and end as the interpreter ends (threads, exit handlers, streams): returns the exit status, for
    ``os._exit``.

    Its ``SystemExit`` is caught here, above the debugger's frames: a run that fails ends with its status,
    where an uncaught ``SystemExit(1)`` would stop F5 a second time, in localflow's ``__main__``.
    """
    import atexit
    import contextlib
    import runpy
    import threading
    import traceback

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


def airflow_environment(env: dict[str, str]) -> dict[str, str]:
    """The environment ``dag-test`` runs Airflow with (localflow's settings applied), as the runner imports it.

    A shell variable the workspace ignores (an exported ``AIRFLOW_HOME``) is not in it: it neither picks
    another runner nor makes one out of date.
    """
    from localflow.config import settings

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
        "localflow": [_stat(path) for path in sorted(LOCALFLOW_PACKAGE.rglob("*.py"))],
    }
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()


def runtime_dir() -> Path:
    """Where runners keep their sockets and logs: a folder private to this user, never reached by a link.

    ``$XDG_RUNTIME_DIR`` (private by definition) when set. Otherwise the shared temporary folder, where
    another local user could have made the path first, as a link to one of our folders (the socket would
    land where they can swap it) or as a folder of theirs: then a folder in the home is used instead.
    """
    name = f"localflow-warm-runner-{os.getuid()}"
    if base := os.environ.get("XDG_RUNTIME_DIR"):
        return private_folder(Path(base) / name)
    try:
        return private_folder(Path(tempfile.gettempdir()) / name)
    except Unavailable:
        cache = Path.home() / ".cache" / "localflow"
        cache.mkdir(parents=True, exist_ok=True)
        return private_folder(cache / "warm-runner")


def private_folder(folder: Path) -> Path:
    """``folder``, made if missing, checked without following links: a folder of ours, mode 0700."""
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass  # checked below, as it is
    except OSError as error:
        raise Unavailable(f"cannot create {folder}: {error.strerror}") from None
    status = os.lstat(folder)
    if not stat.S_ISDIR(status.st_mode):
        raise Unavailable(f"{folder} is a link or a file, not a folder of this user")
    if status.st_uid != os.getuid():
        raise Unavailable(f"{folder} belongs to another user (UID {status.st_uid})")
    if status.st_mode & 0o077:
        os.chmod(folder, 0o700)  # ours, and not a link: in a sticky folder nobody else can swap it
    return folder


def peer_is_us(connection: socket.socket) -> bool:
    """The process at the other end of a Unix socket runs as this user (the client and the runner ask)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return uid == os.getuid()


def _workspace_key(airflow_env: dict[str, str], cwd: str) -> str:
    home = airflow_env.get("AIRFLOW_HOME", "")
    return hashlib.sha256(f"{os.path.realpath(cwd)}\0{home}".encode()).hexdigest()[:16]


def runner_paths(airflow_env: dict[str, str], cwd: str) -> tuple[Path, Path]:
    """The socket and log of the runner for this interpreter, working folder and Airflow home.

    ``airflow_env``: the environment with localflow's settings applied (``airflow_environment``). Named
    ``WORKSPACE-INTERPRETER``, so that ``workspace_runners`` finds those of every interpreter.
    """
    interpreter = hashlib.sha256(sys.executable.encode()).hexdigest()[:8]
    name = f"{_workspace_key(airflow_env, cwd)}-{interpreter}"
    folder = runtime_dir()
    return folder / f"{name}.sock", folder / f"{name}.log"


def workspace_runners(airflow_env: dict[str, str], cwd: str) -> list[Path]:
    """The sockets of this working folder's and Airflow home's runners, whatever interpreter runs them."""
    return sorted(runtime_dir().glob(f"{_workspace_key(airflow_env, cwd)}-*.sock"))


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
