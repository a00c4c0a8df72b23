"""Make ``.venv`` from the lock on a machine that has nothing but Python, then run inside it.

Standard library only: this runs before anything is installed. The venv holds exactly the pins of
``requirements.txt`` and ``requirements-dev.txt`` (the same lock the image and CI install), the user's
packages (``requirements-user.txt``), plus an optional lock while ``.env`` turns on what needs it
(``requirements-s3.txt``: remote task logs), with compiled
bytecode, which makes every Airflow process start about 2 s sooner on machines that set
PYTHONDONTWRITEBYTECODE. A stamp of the lock's hash makes the second run instant.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import venv
from collections.abc import Mapping
from pathlib import Path

from localflow import releases  # the standard library only, as this module (tests/localflow/test_layout.py)

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
# The workspace's own locks, which each Airflow release has a set of (locks/airflow-X.Y.Z/).
RELEASE_LOCKS = tuple(name for name in LOCK_INPUTS if name != USER_LOCK)
# Optional locks, each installed only while its switch is set in .env (or the environment), and removed
# again when it is not: nothing of it is in the default venv (docs/logs.md).
OPTIONAL_LOCKS = {"requirements-s3.txt": "LOCALFLOW_REMOTE_LOGS"}
STAMP = VENV / ".localflow-lock.sha256"
# Venvs of other releases than .venv's, beside the workspace: `upgrade-check`'s candidate, the tests' venv
# of each supported release (testkit/releases.py). One per release (and per set of locks it holds).
RELEASE_VENVS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "localflow" / "releases"
REEXECUTED = "LOCALFLOW_BOOTSTRAPPED"  # set for the command re-executed in the venv (ensure_locks)


def venv_python() -> Path:
    """The venv's interpreter on this platform."""
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def in_prepared_environment() -> bool:
    """True inside the dev container image (the lock is installed system-wide), inside our venv, or in a
    venv of a release this module built (``release_venv``: the tests run each release in one)."""
    if os.environ.get("LOCALFLOW_CONTAINER") == "1":
        return True
    prefix = Path(sys.prefix).resolve()
    return prefix == VENV.resolve() or prefix.parent == RELEASE_VENVS.resolve()


def uv_requirement() -> str:
    """The ``uv==X`` pin of the dev lock: uv installs the lock in ~2 s where pip backtracks for ~50 s."""
    for line in (WORKSPACE / "requirements-dev.txt").read_text().splitlines():
        if line.startswith("uv=="):
            return line.split(";")[0].strip()
    raise SystemExit("localflow: requirements-dev.txt pins no uv; run `python -m localflow lock`.")


def compile_command(lock_file: str, output: Path | str, release: str = releases.LOCKED) -> list[str]:
    """``uv pip compile`` of ``lock_file`` into ``output``: universal, for Linux on Python 3.10 to 3.13.

    uv keeps the pins already in ``output``, so only a changed input changes the result. For another
    ``release`` than the default, the same inputs with its ``overrides.txt`` (the Airflow pin) and its locks.
    """
    inputs = [
        releases.lock_path(release, word) if word in LOCK_INPUTS else word for word in LOCK_INPUTS[lock_file]
    ]
    if lock_file == LOCK_FILES[0] and release != releases.LOCKED:
        inputs += ["--override", releases.lock_path(release, releases.OVERRIDES)]
    return [
        sys.executable, "-m", "uv", "pip", "compile", *inputs,
        "--universal", "--python-version", "3.10", "--quiet", "-o", str(output),
    ]  # fmt: skip


def compile_release_locks(release: str) -> None:
    """Write ``release``'s locks into ``locks/airflow-X.Y.Z/`` (its ``overrides.txt`` first), starting from
    the default locks: uv keeps every pin it can, so the two sets differ only where the release needs it."""
    folder = WORKSPACE / releases.lock_dir(release)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / releases.OVERRIDES).write_text(releases.overrides_text(release))
    for lock_file in RELEASE_LOCKS:
        output = folder / lock_file
        if not output.exists():
            output.write_bytes((WORKSPACE / lock_file).read_bytes())
        _run(compile_command(lock_file, releases.lock_path(release, lock_file), release))


def ensure_release_locks(release: str, fix: str = f"Fix {releases.SETTING} in .env.") -> None:
    """The locks of ``release`` exist: compiled once, on demand, for a release without committed ones.

    ``fix``: what the user changes when ``release`` cannot be locked (where they named it).
    """
    if release == releases.LOCKED or all(
        (WORKSPACE / releases.lock_path(release, name)).exists() for name in RELEASE_LOCKS
    ):
        return
    print(f"localflow: locking Airflow {release} into {releases.lock_dir(release)}/ (once) ...", flush=True)
    try:
        compile_release_locks(release)
    except SystemExit:
        for name in (*RELEASE_LOCKS, releases.OVERRIDES):  # only what this made: no half-made lock stays
            (WORKSPACE / releases.lock_path(release, name)).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the folder too, unless something else is in it
            (WORKSPACE / releases.lock_dir(release)).rmdir()
        sys.exit(
            f"localflow: cannot lock Airflow {release} (uv's output above): is {release} a release of "
            f"apache-airflow on PyPI? {fix}"
        )


def lock_files(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The lock files the venv holds: the default two, each optional one whose switch ``env`` sets, and
    the user's packages (``USER_LOCK``; a copy of the workspace without it holds none).

    ``env`` is the environment ``python -m localflow`` computed (with .env), read once inside the venv;
    before it exists (``None``) only the default locks count.
    """
    env = env or {}
    names = LOCK_FILES + tuple(lock for lock, switch in OPTIONAL_LOCKS.items() if env.get(switch, "").strip())
    release = releases.chosen(env)  # the locks of LOCALFLOW_AIRFLOW_VERSION's release
    workspace_locks = tuple(releases.lock_path(release, name) for name in names)
    return workspace_locks + ((USER_LOCK,) if (WORKSPACE / USER_LOCK).exists() else ())


def _lock_digest(lock_files: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in lock_files:
        # An optional lock is named: a venv with it differs from one without, even if it is empty.
        if Path(name).name in OPTIONAL_LOCKS:
            digest.update(name.encode())
        digest.update((WORKSPACE / name).read_bytes())
    return digest.hexdigest()


def _run(command: list[str]) -> None:
    result = subprocess.run(command, cwd=WORKSPACE, check=False)
    if result.returncode != 0:
        sys.exit(f"localflow: `{' '.join(command)}` failed (exit {result.returncode}); see the output above.")


def ensure_venv(locks: tuple[str, ...] | None = None, release: str = releases.LOCKED) -> Path:
    """Create or update ``.venv`` so it holds exactly ``locks`` (by default ``lock_files()``, ``release``'s);
    return its interpreter."""
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
    optional = [
        f"{Path(lock).name} ({OPTIONAL_LOCKS[Path(lock).name]} is set)"
        for lock in locks
        if Path(lock).name in OPTIONAL_LOCKS
    ]
    release = f" of Airflow {release}" if release != releases.LOCKED else ""
    print(
        f"localflow: installing the locked packages{release}"
        f"{' and ' + ', '.join(optional) if optional else ''} ...",
        flush=True,
    )
    if subprocess.run([python, "-m", "pip", "--version"], capture_output=True, check=False).returncode != 0:
        _run([python, "-m", "ensurepip", "--upgrade"])  # a venv made by another tool may lack pip
    _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", uv_requirement()])
    _run([python, "-m", "uv", "pip", "sync", "--quiet", "--python", python, "--compile-bytecode", *locks])
    STAMP.write_text(digest)
    return venv_python()


def release_venv(release: str, locks: tuple[Path, ...], name: str = "") -> Path:
    """The interpreter of a venv in ``RELEASE_VENVS`` holding exactly ``locks`` (absolute paths), made or
    synced only when they changed (a stamp of their bytes), with compiled bytecode as ``.venv`` is.

    ``name`` tells apart venvs of one release holding other locks (``airflow-3.1.8-yours``).
    """
    folder = RELEASE_VENVS / f"airflow-{release}{name}"
    python = folder / "bin" / "python"
    digest = hashlib.sha256(b"".join(lock.read_bytes() for lock in locks)).hexdigest()
    stamp = folder / ".localflow-lock.sha256"
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    print(f"localflow: installing Airflow {release}'s locked packages into {folder} ...", flush=True)
    uv = [sys.executable, "-m", "uv"]
    if not python.exists():
        _run([*uv, "venv", "--quiet", "--python", sys.executable, str(folder)])
    _run([*uv, "pip", "sync", "--quiet", "--python", str(python), "--compile-bytecode", *map(str, locks)])
    stamp.write_text(digest)
    return python


def reexecuted() -> bool:
    """True in the command this module re-executed into the venv (once: the mark is not passed on)."""
    return os.environ.pop(REEXECUTED, "") == "1"


def ensure_locks(env: Mapping[str, str], reexecuted: bool) -> None:
    """Once ``env`` is known: in a command that was ``reexecuted``, sync the venv to the chosen release's
    lock and the optional locks ``env`` switches on (a changed lock, a switch turned on or off, another
    release since the last sync).

    Only there: a command run with the venv's own interpreter (the tests, F5, the stack's components) uses
    the venv as it is, with one line when it holds another Airflow release than ``env`` chooses.
    """
    try:
        release = releases.chosen(env)
    except releases.ReleaseError as error:
        sys.exit(f"localflow: {error}.")
    if refusal := releases.python_refusal(release, sys.version_info[:2]):
        sys.exit(f"localflow: {refusal}.")
    if reexecuted:
        if releases.untested(release):
            print(releases.untested_notice(release), file=sys.stderr, flush=True)
        ensure_release_locks(release)
        ensure_venv(lock_files(env), release)
    elif (installed := installed_airflow()) and installed != release:
        # The venv's own interpreter (F5, the tests) or the image: said, not synced under a running command.
        fix = (
            "`docker compose build`"
            if os.environ.get("LOCALFLOW_CONTAINER") == "1"
            else "`python3 -m localflow secrets` (any command run with python3)"
        )
        print(
            f"localflow: warning: Airflow {installed} is installed but {releases.SETTING} chooses {release}; "
            f"{fix} installs it.",
            file=sys.stderr,
            flush=True,
        )


def installed_airflow() -> str | None:
    """The Airflow release this interpreter has, or None."""
    from importlib import metadata

    try:
        return metadata.version("apache-airflow")
    except metadata.PackageNotFoundError:
        return None


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
