"""Asking Airflow to reparse a file: ``PUT /api/v2/parseDagFile/{file_token}``, which also rescans the folder.

Airflow hands out file tokens (``GET /api/v2/dags``) only for files that hold, or held, a DAG. For any
other file (a new one, or one broken since its first save) the watcher requests the reparse of another
file of the bundle: the rescan that comes with it finds the new file and parses it first.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from localflow import rest, settings
from localflow.watcher.files import Plan

BUNDLE_NAME = "dags-folder"  # Airflow's default bundle: [core] dags_folder


def log(message: str) -> None:
    """One line to the component's log."""
    print(f"dag-watcher: {message}", flush=True)


def api_base_url(env: Mapping[str, str]) -> str:
    """The api-server's address: where tasks reach it (``[core] execution_api_server_url``) knows it."""
    if url := env.get("LOCALFLOW_API_URL"):
        return url.rstrip("/")
    execution = env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "")
    if execution.rstrip("/").endswith("/execution"):
        return execution.rstrip("/").removesuffix("/execution")
    return settings.api_url(env)


class ApiError(Exception):
    """The api-server did not answer, or refused."""


class AirflowApi:
    """The few REST calls the watcher makes, logged in as the workspace's admin."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self._credentials = {"username": username, "password": password}
        self._timeout = timeout
        self._token: str | None = None

    def _send(
        self, method: str, path: str, payload: dict | None, token: str | None, timeout: float | None = None
    ) -> tuple[int, dict]:
        try:
            return rest.request_json(self.base_url + path, method, payload, token, timeout or self._timeout)
        except OSError as error:
            raise ApiError(f"{method} {path}: {error}") from None

    def login(self) -> None:
        """Get an access token (``POST /auth/token``)."""
        status, body = self._send("POST", "/auth/token", self._credentials, token=None)
        if status != 201:
            raise ApiError(f"login as {self._credentials['username']!r} refused ({status}: {body})")
        self._token = body["access_token"]

    def call(self, method: str, path: str, payload: dict | None = None) -> tuple[int, dict]:
        """One authenticated call; logs in again once when the token has expired."""
        if self._token is None:
            self.login()
        status, body = self._send(method, path, payload, self._token)
        if status == 401:
            self.login()
            status, body = self._send(method, path, payload, self._token)
        return status, body

    def file_tokens(self, bundle: str = BUNDLE_NAME) -> dict[str, str]:
        """``relative_fileloc`` → ``file_token`` of every file of ``bundle`` that holds or held a DAG."""
        tokens: dict[str, str] = {}
        offset, limit = 0, 100
        while True:
            query = urllib.parse.urlencode(
                {"exclude_stale": "false", "limit": limit, "offset": offset, "bundle_name": bundle}
            )
            status, body = self.call("GET", f"/api/v2/dags?{query}")
            if status != 200:
                raise ApiError(f"GET /api/v2/dags: {status} {body}")
            for dag in body.get("dags", []):
                if dag.get("bundle_name") == bundle and dag.get("relative_fileloc"):
                    tokens.setdefault(dag["relative_fileloc"], dag["file_token"])
            offset += limit
            if offset >= body.get("total_entries", 0):
                return tokens

    def warm_up(self) -> None:
        """Answer the execution API's first request now, not during the first task (``rest``)."""
        started = time.monotonic()
        try:
            status = rest.warm_up_execution_api(self.base_url)
        except OSError as error:
            log(f"execution API warm-up failed: {error}")
        else:
            log(f"execution API warmed up ({status}) in {time.monotonic() - started:.1f} s")

    def reparse(self, file_token: str) -> int:
        """``PUT /api/v2/parseDagFile/{file_token}``; 201 (queued), 409 (already queued) or 404."""
        return self.call("PUT", f"/api/v2/parseDagFile/{file_token}")[0]


@dataclass
class Requester:
    """Turns a plan into reparse requests, keeping Airflow's file tokens between saves."""

    api: AirflowApi
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
            raise ApiError(f"reparse of {relative} refused ({status})")
        return True

    def apply(self, work: Plan) -> list[str]:
        """Request every reparse; return what was done, one line per file."""
        done: list[str] = []
        unknown = sorted(relative for relative in work.reparse if not self._request(relative))
        if unknown:
            self.tokens = self.api.file_tokens()
            unknown = [relative for relative in unknown if not self._request(relative)]
        done += [
            f"{relative}: reparse requested" for relative in sorted(work.reparse) if relative not in unknown
        ]
        if unknown or work.rescan:
            what = ", ".join(unknown) or "bundle"
            if not self.tokens:
                self.tokens = self.api.file_tokens()
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
