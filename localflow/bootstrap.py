"""Make ``.venv`` from the lock on a machine that has nothing but Python, then run inside it.

Standard library only: this runs before anything is installed. The venv holds exactly the pins of
``requirements.txt`` and ``requirements-dev.txt`` (the same lock the image and CI install), the user's
packages (``requirements-user.txt``), plus an optional lock while ``.env`` turns on what needs it
(``requirements-s3.txt``: remote task logs), with compiled
bytecode, which makes every Airflow process start about 2 s sooner on machines that set
PYTHONDONTWRITEBYTECODE. A stamp of the lock's hash makes the second run instant.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from collections.abc import Mapping
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parent.parent
VENV = WORKSPACE / ".venv"
LOCK_FILES = ("requirements.txt", "requirements-dev.txt")
# What each lock file is compiled from (pyproject.toml): the runtime dependencies, then the dev group
# constrained by the runtime lock, so that a package in both has one pin.
LOCK_INPUTS = {
    "requirements.txt": ("pyproject.toml",),
    "requirements-dev.txt": ("--group", "pyproject.toml:dev", "-c", "requirements.txt"),
    "requirements-s3.txt": (
        "--group", "pyproject.toml:s3", "-c", "requirements.txt", "-c", "requirements-dev.txt",
    ),
    # Your packages (docs/packages.md): constrained by every lock above, so that none of their pins moves.
    "requirements-user.txt": (
        "requirements-user.in", "-c", "requirements.txt", "-c", "requirements-dev.txt",
        "-c", "requirements-s3.txt",
    ),
}  # fmt: skip
# The user's own packages, kept apart from the workspace's: `add` and `remove` edit the input, never the
# workspace's locks, and the venv always holds this lock (with the default ones).
USER_INPUT = "requirements-user.in"
USER_LOCK = "requirements-user.txt"
# Optional locks, each installed only while its switch is set in .env (or the environment), and removed
# again when it is not: nothing of it is in the default venv (docs/logs.md).
OPTIONAL_LOCKS = {"requirements-s3.txt": "LOCALFLOW_REMOTE_LOGS"}
STAMP = VENV / ".localflow-lock.sha256"
REEXECUTED = "LOCALFLOW_BOOTSTRAPPED"  # set for the command re-executed in the venv (ensure_locks)


def venv_python() -> Path:
    """The venv's interpreter on this platform."""
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def in_prepared_environment() -> bool:
    """True inside the dev container image (the lock is installed system-wide) or inside our venv."""
    if os.environ.get("LOCALFLOW_CONTAINER") == "1":
        return True
    return Path(sys.prefix).resolve() == VENV.resolve()


def uv_requirement() -> str:
    """The ``uv==X`` pin of the dev lock: uv installs the lock in ~2 s where pip backtracks for ~50 s."""
    for line in (WORKSPACE / "requirements-dev.txt").read_text().splitlines():
        if line.startswith("uv=="):
            return line.split(";")[0].strip()
    raise SystemExit("localflow: requirements-dev.txt pins no uv; run `python -m localflow lock`.")


def compile_command(lock_file: str, output: Path | str) -> list[str]:
    """``uv pip compile`` of ``lock_file`` into ``output``: universal, for Linux on Python 3.10 to 3.13.

    uv keeps the pins already in ``output``, so only a changed input changes the result.
    """
    return [
        sys.executable, "-m", "uv", "pip", "compile", *LOCK_INPUTS[lock_file],
        "--universal", "--python-version", "3.10", "--quiet", "-o", str(output),
    ]  # fmt: skip


def lock_files(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The lock files the venv holds: the default two, each optional one whose switch ``env`` sets, and
    the user's packages (``USER_LOCK``; a copy of the workspace without it holds none).

    ``env`` is the environment ``python -m localflow`` computed (with .env), read once inside the venv;
    before it exists (``None``) only the default locks count.
    """
    env = env or {}
    optional = tuple(lock for lock, switch in OPTIONAL_LOCKS.items() if env.get(switch, "").strip())
    return LOCK_FILES + optional + ((USER_LOCK,) if (WORKSPACE / USER_LOCK).exists() else ())


def _lock_digest(lock_files: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in lock_files:
        if name in OPTIONAL_LOCKS:  # named: a venv with it differs from one without, even if it is empty
            digest.update(name.encode())
        digest.update((WORKSPACE / name).read_bytes())
    return digest.hexdigest()


def _run(command: list[str]) -> None:
    result = subprocess.run(command, cwd=WORKSPACE, check=False)
    if result.returncode != 0:
        sys.exit(f"localflow: `{' '.join(command)}` failed (exit {result.returncode}); see the output above.")


def ensure_venv(locks: tuple[str, ...] | None = None) -> Path:
    """Create or update ``.venv`` so it holds exactly ``locks`` (by default ``lock_files()``); return its
    interpreter."""
    locks = lock_files() if locks is None else locks
    if sys.version_info < (3, 10):  # noqa: UP036 - runs on whatever python3 the user has
        sys.exit(f"localflow: Python 3.10 to 3.13 is required; this is {sys.version.split()[0]}.")
    digest = _lock_digest(locks)
    if STAMP.exists() and STAMP.read_text() == digest and venv_python().exists():
        return venv_python()
    if not venv_python().exists():
        print(f"localflow: creating {VENV.name} with Python {sys.version.split()[0]} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    python = str(venv_python())
    optional = [f"{lock} ({OPTIONAL_LOCKS[lock]} is set)" for lock in locks if lock in OPTIONAL_LOCKS]
    print(
        f"localflow: installing the locked packages{' and ' + ', '.join(optional) if optional else ''} ...",
        flush=True,
    )
    if subprocess.run([python, "-m", "pip", "--version"], capture_output=True, check=False).returncode != 0:
        _run([python, "-m", "ensurepip", "--upgrade"])  # a venv made by another tool may lack pip
    _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", uv_requirement()])
    _run([python, "-m", "uv", "pip", "sync", "--quiet", "--python", python, "--compile-bytecode", *locks])
    STAMP.write_text(digest)
    return venv_python()


def ensure_locks(env: Mapping[str, str]) -> None:
    """In the venv this module re-executed into, once ``env`` is known: sync the venv to the lock and the
    optional locks ``env`` switches on (a changed lock, or a switch turned on or off since the last sync).

    Only then: a command run with the venv's own interpreter (the tests, F5, the stack's components) uses
    the venv as it is.
    """
    if os.environ.pop(REEXECUTED, "") == "1":
        ensure_venv(lock_files(env))


def reexec_in_venv(argv: list[str]) -> None:
    """Replace this process with ``python -m localflow ARGV`` inside the venv, unless already there.

    A venv that exists is used as it is: inside it ``ensure_locks`` syncs it, knowing .env's switches.
    """
    if in_prepared_environment():
        return
    python = venv_python() if STAMP.exists() and venv_python().exists() else ensure_venv()
    command = [str(python), "-m", "localflow", *argv]
    if os.name == "nt":  # no exec on Windows: run and pass the exit code on
        sys.exit(subprocess.call(command, cwd=WORKSPACE, env={**os.environ, REEXECUTED: "1"}))
    os.chdir(WORKSPACE)
    os.execve(command[0], command, {**os.environ, REEXECUTED: "1"})
