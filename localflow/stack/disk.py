"""A full disk under the native stack: which disk, how full, what takes the space, which task filled it.

The supervisor looks at each disk the stack writes (``AIRFLOW_HOME``, the SQLite database's folder, the
task logs) every half second, one ``statvfs`` each; this module answers what it asks. What a full disk
looks like in the terminal, and why a task that filled it is not retried: docs/logs.md, "A full disk".
"""

from __future__ import annotations

import contextlib
import heapq
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

MIB = 1024 * 1024
# Below this many free bytes a disk is full: SQLite needs room for its journal, and a component restarted
# there exits again at its first write. It counts as freed from FREED_AT on, so that a few KiB freed by a
# process that exited do not restart everything into the same wall.
FULL_BELOW = 2 * MIB
FREED_AT = 8 * MIB
# A task's log under the base log folder: dag_id=D/run_id=R/task_id=T[/map_index=M]/attempt=N.log
TASK_LOG = re.compile(
    r"dag_id=(?P<dag_id>[^/]+)/run_id=(?P<run_id>[^/]+)/task_id=(?P<task_id>[^/]+)"
    r"(?:/map_index=(?P<map_index>-?\d+))?/attempt=(?P<attempt>\d+)\.log$"
)


@dataclass(frozen=True)
class TaskTry:
    """One try of a task instance, as its log's path names it."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    attempt: int

    def __str__(self) -> str:
        mapped = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"task {self.task_id}{mapped} of {self.dag_id} (run {self.run_id}, try {self.attempt})"

    @property
    def rest_path(self) -> str:
        """Its task instance in the REST API."""
        path = f"/api/v2/dags/{self.dag_id}/dagRuns/{self.run_id}/taskInstances/{self.task_id}"
        return f"{path}/{self.map_index}" if self.map_index >= 0 else path


@dataclass(frozen=True)
class FullDisk:
    """A disk found full: where, how big, what takes its space, and the task whose log is the largest."""

    folder: Path  # the stack's folder on it (.airflow, or the database's folder)
    mount: Path
    fs_type: str
    free: int
    total: int
    largest: list[tuple[int, Path]]
    held: int  # what the folder's files take in all
    task: TaskTry | None

    def line(self, home: Path) -> str:
        """The one line ``up`` prints while the stack runs."""
        line = f"localflow: {self.where(home)}"
        if self.task:
            line += (
                f" The largest is the log of {self.task}: it is stopped, and marked failed without retry "
                "once the database can be written, so that it does not fill the disk again (clear it in "
                "the UI to run it again)."
            )
        return (
            line
            + f" Components that exit wait until {size(FREED_AT)} are free; free space and the stack resumes."
        )

    def where(self, home: Path) -> str:
        """Which disk is full, how full, and what takes the space there."""
        where = f"{size(self.free)} free of {size(self.total)} on {self.mount}"
        where += f" ({self.fs_type})" if self.fs_type else ""
        taken = ", ".join(f"{shown(path, home)} {size(length)}" for length, path in self.largest) or "nothing"
        line = f"the disk of {self.folder} is full: {where}; largest there: {taken}"
        used = self.total - self.free
        if self.held < used / 2:  # the space went elsewhere on that disk: say so, or the list misleads
            line += f" (the folder holds {size(self.held)} of the {size(used)} used: the rest is outside it)"
        return line + "."


def size(length: float) -> str:
    """Bytes as the terminal shows them."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if length < 1024 or unit == "GiB":
            return f"{length:.0f} {unit}" if unit == "B" else f"{length:.1f} {unit}"
        length /= 1024
    raise AssertionError("unreachable")


def shown(path: Path, home: Path) -> str:
    """A path relative to the stack's home where it is inside, else as it is."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(home))
    return str(path)


def folders(env: Mapping[str, str]) -> list[Path]:
    """The folders the stack writes, one per disk: its home, the SQLite database's folder, the task logs."""
    found = [Path(env["AIRFLOW_HOME"])]
    database = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if database.startswith("sqlite:///"):
        found.append(Path(database.removeprefix("sqlite:///").split("?", 1)[0]).parent)
    if env.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER"):
        found.append(Path(env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]))
    devices, unique = set(), []
    for folder in found:
        try:
            device = folder.stat().st_dev
        except OSError:  # not made yet
            continue
        if device not in devices:
            devices.add(device)
            unique.append(folder)
    return unique


def free_bytes(folder: Path) -> tuple[int, int] | None:
    """Free and total bytes of the disk of ``folder`` (what an unprivileged process may use), or None."""
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return None
    return usage.free, usage.total


def free_space(env: Mapping[str, str]) -> list[tuple[Path, int, int]]:
    """Each folder of ``folders`` with its disk's free and total bytes (one ``statvfs`` each)."""
    return [(folder, *usage) for folder in folders(env) if (usage := free_bytes(folder))]


def mount_of(folder: Path) -> tuple[Path, str]:
    """The mount point of ``folder``'s disk and its file system type ('' where /proc/mounts is missing)."""
    mount = folder.resolve()
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    fs_type = ""
    with contextlib.suppress(OSError):
        for partition in psutil.disk_partitions(all=True):
            if Path(partition.mountpoint) == mount:
                fs_type = partition.fstype
    return mount, fs_type


def largest_files(folder: Path, count: int = 3) -> tuple[list[tuple[int, Path]], int]:
    """The ``count`` largest files under ``folder`` by the space they take, largest first, and the space
    all its files take."""
    sizes = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root, name)
            with contextlib.suppress(OSError):
                sizes.append((path.lstat().st_blocks * 512, path))
    return heapq.nlargest(count, sizes, key=lambda found: found[0]), sum(length for length, _ in sizes)


def task_of(path: Path) -> TaskTry | None:
    """The task try whose log ``path`` is, or None."""
    found = TASK_LOG.search(path.as_posix())
    if not found:
        return None
    map_index = int(found["map_index"]) if found["map_index"] is not None else -1
    return TaskTry(found["dag_id"], found["run_id"], found["task_id"], map_index, int(found["attempt"]))


def find_full(env: Mapping[str, str], below: int) -> FullDisk | None:
    """The first disk of the stack with fewer than ``below`` bytes free, described, or None."""
    for folder, free, total in free_space(env):
        if free >= below:
            continue
        mount, fs_type = mount_of(folder)
        largest, held = largest_files(folder)
        task = task_of(largest[0][1]) if largest else None
        return FullDisk(folder, mount, fs_type, free, total, largest, held, task)
    return None


def written_lately(path: Path, seconds: float = 60.0) -> bool:
    """True when ``path`` was written in the last ``seconds`` (a task log still growing, or just left)."""
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


def writers_of(path: Path, processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``processes`` that hold ``path`` open (a task writing its log; its task supervisor)."""
    found = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if any(Path(opened.path) == path for opened in process.open_files()):
                found.append(process)
    return found
