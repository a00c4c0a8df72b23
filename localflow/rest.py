"""The one client of Airflow's REST API, standard library only: the supervisor, the watcher, tests, benchmarks.

``request_json`` is one JSON request; ``AirflowClient`` logs in as a user of the SimpleAuthManager (once,
and again when the token expires) and offers the calls the workspace makes: health, DAGs, triggering a run
and waiting for it, its task instances and their logs, import errors and DAG warnings, reparse requests
and when a file's latest parse began, the Execution API warm-up.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from datetime import datetime

from localflow.polling import wait_until

# What /api/v2/monitor/health reports; all healthy means the stack can run a task.
HEALTH_KEYS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
FINISHED_RUN_STATES = frozenset({"success", "failed"})


class ApiError(Exception):
    """The api-server did not answer, or refused."""


def request_json(
    url: str, method: str = "GET", payload: dict | None = None, token: str | None = None, timeout: float = 30
) -> tuple[int, dict]:
    """Send ``payload`` as JSON (with a bearer token when given); return (status, JSON body).

    An HTTP error status is returned, not raised; a body that is not JSON comes back as ``{"detail": text}``.
    Network errors (OSError) propagate.
    """
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        return status, json.loads(body or b"{}")
    except ValueError:
        return status, {"detail": body.decode(errors="replace")}


def is_healthy(document: dict | None) -> bool:
    """True when the database and every component report healthy."""
    return bool(document) and all((document.get(key) or {}).get("status") == "healthy" for key in HEALTH_KEYS)


class AirflowClient:
    """Airflow's REST API at ``base_url`` (``http://host:port``), as ``username``.

    ``password`` may be a callable, asked at each login (the tests read it from ``.env``). Network errors
    raise ``ApiError``; HTTP errors come back as statuses, except where a method says otherwise.
    """

    def __init__(
        self,
        base_url: str,
        username: str = "admin",
        password: str | Callable[[], str] | None = None,
        timeout: float = 30,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout = timeout
        self._token: str | None = None

    # --- requests ------------------------------------------------------------------------------------

    def send(
        self, method: str, path: str, payload: dict | None = None, token: str | None = None
    ) -> tuple[int, dict]:
        """One request without logging in; network errors raise ``ApiError``."""
        try:
            return request_json(self.base_url + path, method, payload, token, self.timeout)
        except OSError as error:
            raise ApiError(f"{method} {path}: {error}") from None

    def login(self, password: str | None = None) -> str:
        """Get an access token (``POST /auth/token``) and use it from now on; ``ApiError`` if refused."""
        password = self._password if password is None else password
        if callable(password):
            password = password()
        credentials = {"username": self.username, "password": password}
        status, body = self.send("POST", "/auth/token", credentials)
        if status != 201:
            raise ApiError(f"login as {self.username!r} refused ({status}: {body})")
        self._token = body["access_token"]
        return self._token

    @property
    def token(self) -> str:
        """The access token, logging in first if needed."""
        return self._token or self.login()

    def request(self, method: str, path: str, payload: dict | None = None) -> tuple[int, dict]:
        """One authenticated request; logs in again once when the token has expired."""
        status, body = self.send(method, path, payload, self.token)
        if status == 401:
            self.login()
            status, body = self.send(method, path, payload, self._token)
        return status, body

    def get(self, path: str) -> dict:
        """``GET path``, which must answer 200; its body."""
        status, body = self.request("GET", path)
        if status != 200:
            raise ApiError(f"GET {path}: {status} {body}")
        return body

    # --- health --------------------------------------------------------------------------------------

    def health(self, timeout: float = 2.0) -> dict | None:
        """``/api/v2/monitor/health`` (no login needed), or None while the api-server does not answer."""
        try:
            status, body = request_json(f"{self.base_url}/api/v2/monitor/health", timeout=timeout)
        except OSError:
            return None
        return body if status == 200 else None

    def is_healthy(self) -> bool:
        """Every component reports healthy."""
        return is_healthy(self.health())

    def warm_up_execution_api(self, timeout: float = 300) -> int:
        """Make the api-server build its Execution API now, before a task or a reparse request waits on it.

        Airflow builds the API's versioned routes on its first request: about 2 s during which the single
        api-server worker answers nothing else, 20 s on a busy 2-core machine, longer than a task's client
        waits (it gives up, and the try fails until its retry 5 min later). Returns the status; network
        errors (OSError) propagate.
        """
        return request_json(f"{self.base_url}/execution/health", timeout=timeout)[0]

    # --- DAGs and runs -------------------------------------------------------------------------------

    def dags(self, **query: object) -> list[dict]:
        """Every DAG ``GET /api/v2/dags`` lists with ``query``, all pages."""
        found: list[dict] = []
        offset, limit = 0, 100
        while True:
            page = urllib.parse.urlencode({**query, "limit": limit, "offset": offset})
            body = self.get(f"/api/v2/dags?{page}")
            found += body.get("dags", [])
            offset += limit
            if offset >= body.get("total_entries", 0):
                return found

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 180) -> None:
        """Wait until the dag-processor has serialized every one of ``dag_ids``."""
        wanted = set(dag_ids)

        def missing() -> set[str]:
            return wanted - {dag["dag_id"] for dag in self.dags()}

        wait_until(lambda: not missing(), timeout, interval=1, what=lambda: f"DAGs {sorted(missing())}")

    def trigger(
        self, dag_id: str, conf: dict | None = None, *, unpause: bool = True, logical_date: str | None = None
    ) -> str:
        """Unpause (unless told not to) and trigger ``dag_id`` now (at ``logical_date``, ISO 8601, when
        given: the UI's trigger form); return the run id. A refusal raises ``ApiError`` with Airflow's reason.
        """
        if unpause:
            status, body = self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
            if status != 200:
                raise ApiError(f"unpausing {dag_id}: {status} {body}")
        status, body = self.request(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": conf or {}}
        )
        if status != 200:
            raise ApiError(f"triggering {dag_id}: {status} {body.get('detail', body)}")
        return body["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict:
        """The DAG run as the API shows it."""
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180, interval: float = 1.0) -> dict:
        """Poll the run until it has finished (success or failed); return it."""

        def finished() -> dict | None:
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            return body if status == 200 and body.get("state") in FINISHED_RUN_STATES else None

        return wait_until(finished, timeout, interval=interval, what=f"run {run_id} of {dag_id} finished")

    def task_ids(self, dag_id: str) -> set[str]:
        """The task ids of the DAG as last serialized; empty while the API does not know the DAG."""
        status, body = self.request("GET", f"/api/v2/dags/{dag_id}/tasks")
        return {task["task_id"] for task in body.get("tasks", [])} if status == 200 else set()

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """The task instances of a run (mapped ones each with its ``map_index``), their states and tries."""
        run = urllib.parse.quote(run_id, safe="")
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run}/taskInstances?limit=1000")["task_instances"]

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> list[str]:
        """The events of a task instance's log, in the order the UI shows them."""
        events = self.task_log_events(dag_id, run_id, task_id, try_number, map_index)
        return [event if isinstance(event, str) else str(event.get("event", "")) for event in events]

    def task_log_events(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> list[dict | str]:
        """A task instance's log as the API gives it: structured events (level, ``error_detail``, ...)."""
        run = urllib.parse.quote(run_id, safe="")
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run}/taskInstances/{task_id}/logs/{try_number}"
        return self.get(f"{path}?full_content=true&map_index={map_index}")["content"]

    # --- parsing -------------------------------------------------------------------------------------

    def import_errors(self) -> dict[str, str]:
        """The import errors the UI shows: file (relative to its bundle) → the error's traceback."""
        body = self.get("/api/v2/importErrors?limit=100")
        return {error["filename"]: error["stack_trace"] for error in body["import_errors"]}

    def dag_warnings(self) -> list[dict]:
        """The DAG warnings the UI shows (``dag_id``, ``warning_type``, ``message``)."""
        return self.get("/api/v2/dagWarnings?limit=1000")["dag_warnings"]

    def file_tokens(self, bundle: str) -> dict[str, str]:
        """``relative_fileloc`` → ``file_token`` of every file of ``bundle`` that holds or held a DAG."""
        tokens: dict[str, str] = {}
        for dag in self.dags(exclude_stale="false", bundle_name=bundle):
            if dag.get("bundle_name") == bundle and dag.get("relative_fileloc"):
                tokens.setdefault(dag["relative_fileloc"], dag["file_token"])
        return tokens

    def parse_starts(self, bundle: str) -> dict[str, float]:
        """``relative_fileloc`` → when its latest parse began (epoch seconds), for files of ``bundle``.

        Airflow records when a parse's results were saved and how long the parse took; the difference is
        when the parse process started, a little later than it really did (the results' database work).
        """
        starts: dict[str, float] = {}
        for dag in self.dags(exclude_stale="false", bundle_name=bundle):
            relative, parsed = dag.get("relative_fileloc"), dag.get("last_parsed_time")
            if dag.get("bundle_name") == bundle and relative and parsed:
                began = datetime.fromisoformat(parsed).timestamp() - (dag.get("last_parse_duration") or 0.0)
                starts[relative] = max(began, starts.get(relative, began))
        return starts

    def reparse(self, file_token: str) -> int:
        """``PUT /api/v2/parseDagFile/{file_token}``; 201 (queued), 409 (already queued) or 404."""
        return self.request("PUT", f"/api/v2/parseDagFile/{file_token}")[0]
