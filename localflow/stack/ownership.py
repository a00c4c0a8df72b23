"""One native stack per workspace, and every process a stack started found again, even after a crash.

``up`` takes an exclusive lock on ``AIRFLOW_HOME/stack.lock`` before it touches anything, records its PID
and a new stack id there, and the supervisor holds the lock for its lifetime (across its re-executions).
Every process of the stack, task processes included, inherits ``LOCALFLOW_STACK_ID``: stopping ends all
of them, whatever process group they made, and the next ``up`` after a crash (the supervisor killed with
SIGKILL) finds and stops what is left of the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from pathlib import Path

import psutil

from localflow.errors import LocalflowError

STACK_ID = "LOCALFLOW_STACK_ID"
LOCK_FD = "LOCALFLOW_STACK_LOCK_FD"  # the supervisor's open lock, kept across execve
LOCK_FILE_NAME = "stack.lock"


def new_stack_id() -> str:
    """An id no other stack has had."""
    return uuid.uuid4().hex


def acquire(state_dir: Path) -> tuple[int, dict]:
    """Lock the workspace's stack lock for this process; return its descriptor and the last stack's record.

    Raises one line naming the other ``up`` when one holds the lock. The descriptor is inheritable, so
    the lock outlives ``execve``; components close it (``release_in_child``).
    """
    path = state_dir / LOCK_FILE_NAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise LocalflowError(f"cannot create {path}: {error.strerror}; is the workspace writable?") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read(fd).get("pid", "?")
        os.close(fd)
        raise LocalflowError(
            f"another `up` runs this workspace (PID {holder}); stop it first (Ctrl-C in its terminal, "
            f"or kill {holder}). Two stacks on one workspace would share its database."
        ) from None
    os.set_inheritable(fd, True)
    return fd, _read(fd)


def record(fd: int, stack_id: str) -> None:
    """Write this process's PID and the stack id into the lock file (the supervisor keeps this PID)."""
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "id": stack_id, "started": time.time()}).encode())


def discard_unused(state_dir: Path, fd: int) -> None:
    """After a start that failed before recording anything: remove the lock file if it is empty."""
    if not _read(fd):
        (state_dir / LOCK_FILE_NAME).unlink(missing_ok=True)
    os.close(fd)


def release_in_child() -> None:
    """In a component just forked: close the inherited lock, which belongs to the supervisor alone."""
    with contextlib.suppress(KeyError, ValueError, OSError):
        os.close(int(os.environ[LOCK_FD]))


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        return json.loads(os.read(fd, 65536) or b"{}")
    except ValueError:
        return {}


def processes_of(stack_id: str) -> list[psutil.Process]:
    """This user's processes that belong to the stack ``stack_id``, this one excepted."""
    found = []
    for process in psutil.process_iter(["uids"]):
        if process.pid == os.getpid() or process.info["uids"] is None:
            continue
        if process.info["uids"].real != os.getuid():
            continue
        with contextlib.suppress(psutil.Error):
            if process.environ().get(STACK_ID) == stack_id:
                found.append(process)
    return found


def end(processes: list[psutil.Process], timeout: float) -> list[int]:
    """SIGTERM each process, SIGKILL what still runs after ``timeout`` seconds; return their PIDs."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _gone, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=timeout)
    return [process.pid for process in processes]


def running_pid(state_dir: Path) -> int | None:
    """The PID of the ``up`` that holds this workspace's stack lock now, or None when no stack runs."""
    try:
        fd = os.open(state_dir / LOCK_FILE_NAME, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read(fd).get("pid")
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
