"""One JSON request to Airflow's REST API, standard library only: shared by the watcher, `up` and the tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


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


def warm_up_execution_api(base_url: str, timeout: float = 300) -> int:
    """Make the api-server build its Execution API now, before a task or a reparse request waits on it.

    Airflow builds the API's versioned routes on its first request: about 2 s during which the single
    api-server worker answers nothing else, 20 s on a busy 2-core machine, longer than a task's client
    waits (it gives up, and the try fails until its retry 5 min later). Returns the status; network
    errors (OSError) propagate.
    """
    return request_json(f"{base_url}/execution/health", timeout=timeout)[0]


HEALTH_KEYS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def health(base_url: str, timeout: float = 2.0) -> dict | None:
    """The api-server's ``/api/v2/monitor/health`` document, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"{base_url}/api/v2/monitor/health", timeout=timeout) as response:
            return json.load(response)
    except (OSError, ValueError, urllib.error.URLError):
        return None


def is_healthy(document: dict | None) -> bool:
    """True when the database and every component report healthy."""
    return bool(document) and all((document.get(key) or {}).get("status") == "healthy" for key in HEALTH_KEYS)
