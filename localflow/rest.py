"""One JSON request to Airflow's REST API, standard library only: shared by the watcher and the tests."""

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
