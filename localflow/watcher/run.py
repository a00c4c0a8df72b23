"""``python -m localflow watch``: the watcher's loop, and its container healthcheck (``watch --check``)."""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from localflow import rest
from localflow.config import settings
from localflow.secrets import store
from localflow.secrets.rules import ADMIN_PASSWORD
from localflow.stopping import StopRequest
from localflow.watcher.events import (
    DEFAULT_POLL_INTERVAL,
    POLL_INTERVAL_VARIABLE,
    choose_mode,
    collect,
    start_observer,
)
from localflow.watcher.files import Folders, plan
from localflow.watcher.reparse import BUNDLE_NAME, Requester, api_base_url, log, warm_up

HEARTBEAT_FILE = Path(tempfile.gettempdir()) / "localflow-dag-watcher.alive"
HEARTBEAT_MAX_AGE = 60.0


def password(env: Mapping[str, str]) -> str:
    """The admin password: from the environment, else from the workspace's ``.env``."""
    return env.get(ADMIN_PASSWORD) or store.load(settings.WORKSPACE)[ADMIN_PASSWORD]


def run(env: Mapping[str, str]) -> int:
    """Watch until SIGTERM or Ctrl-C."""
    folders = Folders.from_environment(env)
    mode, reason = choose_mode(env, folders.dags)
    poll_interval = float(env.get(POLL_INTERVAL_VARIABLE, DEFAULT_POLL_INTERVAL))
    stopping = StopRequest()
    if mode == "off":
        log(f"not watching ({reason})")
        while not stopping:
            time.sleep(1.0)
        return 0
    events: queue.Queue = queue.Queue()
    observer = start_observer(mode, folders, events, poll_interval)
    how = f"polling every {poll_interval:g} s" if mode == "poll" else "file events"
    log(f"watching {folders.dags} and {folders.plugins} with {how} ({reason})")
    # Short timeouts: a request that hangs would hold back the next save.
    requester = Requester(
        rest.AirflowClient(api_base_url(env), settings.ADMIN_USER, password(env), timeout=10)
    )
    pending: set[Path] = set()
    ready = failing = False
    try:
        while not stopping:
            pending |= collect(events, timeout=1.0)
            try:
                if not ready:
                    requester.tokens = requester.api.file_tokens(BUNDLE_NAME)
                    ready, failing = True, False
                    log(f"connected to {requester.api.base_url}")
                    threading.Thread(target=warm_up, args=(requester.api,), daemon=True).start()
                if pending:
                    started = time.monotonic()
                    for line in requester.apply(plan(pending, folders)):
                        log(f"{line} ({(time.monotonic() - started) * 1000:.0f} ms)")
                    pending = set()
                for line in requester.confirm(folders.dags):
                    log(line)
                HEARTBEAT_FILE.touch()
            except rest.ApiError as error:
                if ready or not failing:
                    log(f"api-server not reachable ({error}); retrying every second")
                ready, failing = False, True
                time.sleep(1.0)
    finally:
        observer.stop()
        observer.join(timeout=5)
    return 0


def check() -> int:
    """Container healthcheck: 0 when the watcher reached the api-server within the last minute."""
    try:
        age = time.time() - HEARTBEAT_FILE.stat().st_mtime
    except OSError:
        return 1
    return 0 if age < HEARTBEAT_MAX_AGE else 1
