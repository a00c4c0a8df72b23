"""Asking Airflow to reparse a file: ``PUT /api/v2/parseDagFile/{file_token}``, which also rescans the folder.

Airflow hands out file tokens (``GET /api/v2/dags``) only for files that hold, or held, a DAG. For any
other file (a new one, or one broken since its first save) the watcher requests the reparse of another
file of the bundle: the rescan that comes with it finds the new file and parses it first.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from localflow import rest
from localflow.config import settings
from localflow.watcher.files import Plan

BUNDLE_NAME = "dags-folder"  # Airflow's default bundle: [core] dags_folder


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


@dataclass
class Requester:
    """Turns a plan into reparse requests, keeping Airflow's file tokens between saves."""

    api: rest.AirflowClient
    tokens: dict[str, str] = field(default_factory=dict)

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
        done += [
            f"{relative}: reparse requested" for relative in sorted(work.reparse) if relative not in unknown
        ]
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
