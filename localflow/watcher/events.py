"""Listening for saves: OS file events natively, polling on a bind mount that carries no events.

A container whose workspace is a bind mount from macOS or Windows (virtiofs, grpcfuse, 9p ...) may never
see an event, so there the watcher polls the files instead. ``LOCALFLOW_WATCH=auto|events|poll|off``
(default ``auto``) decides; ``LOCALFLOW_WATCH_POLL_INTERVAL`` is the polling period in seconds (default
0.5). With ``off`` the watcher only waits to be stopped (the benchmark's stock run uses it).
"""

from __future__ import annotations

import os
import queue
from collections.abc import Mapping
from pathlib import Path

from localflow.errors import LocalflowError
from localflow.watcher.files import Folders

MODE_VARIABLE = "LOCALFLOW_WATCH"
POLL_INTERVAL_VARIABLE = "LOCALFLOW_WATCH_POLL_INTERVAL"
DEFAULT_POLL_INTERVAL = 0.5
MODES = ("auto", "events", "poll", "off")
# Filesystems of bind mounts from a macOS or Windows host, which do not reliably carry file events.
NO_EVENT_FILESYSTEMS = frozenset(
    {"fakeowner", "virtiofs", "grpcfuse", "fuse.grpcfuse", "osxfs", "9p", "drvfs", "vboxsf", "cifs", "smb3"}
)
QUIET_PERIOD = 0.05  # an editor's save is a burst of events; handle it once


def mount_filesystem(path: Path, mounts_file: Path = Path("/proc/self/mounts")) -> str | None:
    """The type of the filesystem ``path`` lives on (Linux), or None when unknown."""
    try:
        lines = mounts_file.read_text().splitlines()
    except OSError:
        return None
    best, fstype = "", None
    resolved = str(path.resolve())
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        if (resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")) and len(
            mount_point
        ) >= len(best):
            best, fstype = mount_point, fields[2]
    return fstype


def choose_mode(
    env: Mapping[str, str], folder: Path, mounts_file: Path = Path("/proc/self/mounts")
) -> tuple[str, str]:
    """``events`` or ``poll``, and why: the setting, else polling on a host-shared bind mount."""
    setting = env.get(MODE_VARIABLE, "auto").strip().lower() or "auto"
    if setting not in MODES:
        raise LocalflowError(f"{MODE_VARIABLE}={setting!r} is not one of {', '.join(MODES)}.")
    if setting != "auto":
        return setting, f"{MODE_VARIABLE}={setting}"
    fstype = mount_filesystem(folder, mounts_file)
    if fstype in NO_EVENT_FILESYSTEMS:
        return "poll", f"{folder} is on {fstype}, a mount from another OS that may drop file events"
    return "events", f"{folder} is on {fstype or 'a local filesystem'}"


def start_observer(mode: str, folders: Folders, events: queue.Queue, poll_interval: float):
    """A running watchdog observer that puts every touched path on ``events``."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event) -> None:
            # A folder is "modified" whenever a file in it changes: that file's own event is enough.
            if event.event_type in {"opened", "closed_no_write"} or (
                event.is_directory and event.event_type == "modified"
            ):
                return
            for path in (event.src_path, getattr(event, "dest_path", "")):
                if path:
                    events.put(Path(os.fsdecode(path)))

    observer = PollingObserver(timeout=poll_interval) if mode == "poll" else Observer()
    for folder in folders.roots():
        folder.mkdir(parents=True, exist_ok=True)
        observer.schedule(Handler(), str(folder), recursive=True)
    observer.start()
    return observer


def collect(events: queue.Queue, timeout: float) -> set[Path]:
    """The paths of one burst of events (empty after ``timeout`` without any)."""
    try:
        batch = {events.get(timeout=timeout)}
    except queue.Empty:
        return set()
    while True:
        try:
            batch.add(events.get(timeout=QUIET_PERIOD))
        except queue.Empty:
            return batch
