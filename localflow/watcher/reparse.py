"""Asking Airflow to reparse a file: ``PUT /api/v2/parseDagFile/{file_token}``, which also rescans the folder.

Airflow hands out file tokens (``GET /api/v2/dags``) only for files that hold, or held, a DAG. For any
other file (a new one, or one broken since its first save) the watcher requests the reparse of another
file of the bundle: the rescan that comes with it finds the new file and parses it first.

Airflow drops a request that comes while that same file is being parsed (3.3.2 ``DagFileProcessorManager``:
``_queue_requested_files_for_parsing`` deletes the request and queues the file, ``_start_new_processes``
skips a queued file that is still in ``_processors``), so a save during a parse showed only at the next
periodic reparse. The watcher therefore looks again after each request (``Requester.confirm``): when the
file's latest parse began before its last save, it requests the reparse again, a few times at most.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from localflow import rest
from localflow.config import settings
from localflow.watcher.files import Plan

BUNDLE_NAME = "dags-folder"  # Airflow's default bundle: [core] dags_folder
SETTLE = 2.0  # seconds from a request to the first look at whether a parse saw the save
MAX_REQUESTS_AGAIN = 3  # looks wait 2, 4, 8 s: a parse that drops the request has ended by then
# A parse's start as the API gives it (``rest.parse_starts``) is later than the real one by at most this.
START_MARGIN = 0.25


def log(message: str) -> None:
    """One line to the component's log."""
    print(f"dag-watcher: {message}", flush=True)


def api_base_url(env: Mapping[str, str]) -> str:
    """The api-server's address: where tasks reach it (``[core] execution_api_server_url``) knows it."""
    execution = env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "")
    if execution.rstrip("/").endswith("/execution"):
        return execution.rstrip("/").removesuffix("/execution")
    return settings.api_url(env)


def warm_up(api: rest.AirflowClient) -> None:
    """Answer the Execution API's first request now, not during the first task (``rest``)."""
    started = time.monotonic()
    try:
        status = api.warm_up_execution_api()
    except OSError as error:
        log(f"execution API warm-up failed: {error}")
    else:
        log(f"execution API warmed up ({status}) in {time.monotonic() - started:.1f} s")


@dataclass(frozen=True)
class Unconfirmed:
    """A requested reparse not yet seen to have parsed the last save."""

    due: float  # time.monotonic() of the next look
    requested_again: int = 0


@dataclass
class Requester:
    """Turns a plan into reparse requests, keeping Airflow's file tokens between saves."""

    api: rest.AirflowClient
    tokens: dict[str, str] = field(default_factory=dict)
    unconfirmed: dict[str, Unconfirmed] = field(default_factory=dict)

    def _request(self, relative: str) -> bool:
        token = self.tokens.get(relative)
        if token is None:
            return False
        status = self.api.reparse(token)
        if status == 404:  # the file's DAGs are gone from the database: a stale token
            self.tokens.pop(relative, None)
            return False
        if status not in (201, 409):
            raise rest.ApiError(f"reparse of {relative} refused ({status})")
        return True

    def apply(self, work: Plan) -> list[str]:
        """Request every reparse; return what was done, one line per file."""
        done: list[str] = []
        unknown = sorted(relative for relative in work.reparse if not self._request(relative))
        if unknown:
            self.tokens = self.api.file_tokens(BUNDLE_NAME)
            unknown = [relative for relative in unknown if not self._request(relative)]
        requested = sorted(relative for relative in work.reparse if relative not in unknown)
        done += [f"{relative}: reparse requested" for relative in requested]
        self.unconfirmed.update({relative: Unconfirmed(time.monotonic() + SETTLE) for relative in requested})
        if unknown or work.rescan:
            what = ", ".join(unknown) or "bundle"
            if not self.tokens:
                self.tokens = self.api.file_tokens(BUNDLE_NAME)
            # Any known file will do: its reparse request makes the dag-processor rescan the bundle
            # first, and the files it finds new go to the front of the queue.
            for relative in list(self.tokens):
                if self._request(relative):
                    done.append(f"{what}: bundle rescan requested (via {relative})")
                    break
            else:
                done.append(
                    f"{what}: no DAG in the bundle yet, so nothing to request a rescan with; Airflow finds "
                    "it at its next periodic rescan ([dag_processor] refresh_interval)"
                )
        return done

    def confirm(self, dags: Path) -> list[str]:
        """Request again each due reparse whose file's latest parse began before its last save."""
        now = time.monotonic()
        due = sorted(relative for relative, check in self.unconfirmed.items() if check.due <= now)
        if not due:
            return []
        starts = self.api.parse_starts(BUNDLE_NAME)
        done: list[str] = []
        for relative in due:
            check = self.unconfirmed.pop(relative)
            try:
                saved = (dags / relative).stat().st_mtime
            except OSError:
                continue  # deleted since: the rescan that came with the request sees that
            if starts.get(relative, float("-inf")) - START_MARGIN >= saved:
                continue
            if check.requested_again >= MAX_REQUESTS_AGAIN:
                done.append(
                    f"{relative}: no parse of the last save yet after {MAX_REQUESTS_AGAIN} more requests; "
                    "Airflow parses it at its next periodic reparse ([dag_processor] min_file_process_interval)"
                )
            elif self._request(relative):
                again = check.requested_again + 1
                self.unconfirmed[relative] = Unconfirmed(now + SETTLE * 2**again, again)
                done.append(
                    f"{relative}: its latest recorded parse began before its last save; reparse requested again"
                )
        return done
