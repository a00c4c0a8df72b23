"""The pools of ``airflow_settings.yaml``, written into the database by the scheduler, and again on an edit.

Airflow has secrets backends for connections and variables but nothing of the kind for pools, and a task
whose ``pool=`` names a pool that does not exist is never queued. So the scheduler, the component that
hands out pool slots, checks the file every ``INTERVAL`` seconds (one ``stat``, as the secrets backend
does at each lookup) and creates or updates each pool whose entry is new or changed: an edit counts
without a restart, natively and in compose. A pool removed from the file stays (it may be in use), and one
changed in the UI keeps its change until its entry in the file changes.

Installed by the workspace plugin's ``on_starting`` listener (``plugins/localflow_plugin.py``), in the
scheduler only. Imports Airflow only when called.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

INTERVAL = 2.0  # seconds between looks at the file
SCHEDULER_JOB = "SchedulerJob"


def apply(wanted: dict[str, tuple[int, str]], applied: dict[str, tuple[int, str]]) -> list[str]:
    """Create or update each pool of ``wanted`` that differs from ``applied``; one line for each."""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    changed = {name: spec for name, spec in wanted.items() if applied.get(name) != spec}
    if not changed:
        return []
    lines = []
    with create_session() as session:
        for name, (slots, description) in sorted(changed.items()):
            Pool.create_or_update_pool(name, slots, description, False, session=session)
            lines.append(f"localflow: pool {name!r} ({slots} slots) from airflow_settings.yaml")
    return lines


def keep_in_sync(stop: threading.Event | None = None) -> None:
    """Apply the file's pools now and after each change of the file, until ``stop`` is set."""
    from localflow.secrets.backend import LocalSettingsBackend

    backend = LocalSettingsBackend()
    applied: dict[str, tuple[int, str]] = {}
    while not (stop and stop.is_set()):
        wanted = backend.settings().pools
        try:
            for line in apply(wanted, applied):
                log.info("%s", line)
            applied = dict(wanted)
        except Exception as error:  # the database away for a moment: try again at the next look
            log.warning("localflow: cannot write the pools of airflow_settings.yaml yet: %s", error)
        time.sleep(INTERVAL)


def install(job: Any) -> None:
    """Keep the pools in sync from a scheduler's process (``job``: the job that starts)."""
    threading.Thread(target=_in_a_scheduler, args=(job,), name="localflow-pools", daemon=True).start()


def _in_a_scheduler(job: Any) -> None:
    # Airflow calls on_starting from Job.__init__, before the job's runner sets its type (and every
    # component has imported every runner: localflow/stack/preload.py), so the type is awaited here.
    deadline = time.monotonic() + 60
    while getattr(job, "job_type", None) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if getattr(job, "job_type", None) == SCHEDULER_JOB:
        keep_in_sync()
