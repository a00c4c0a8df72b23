"""The SimpleAuthManager passwords file: the api-server's admin password, taken from ``.env``.

Airflow generates a random password into this file when it finds none; written before the api-server
starts, it holds ``.env``'s ``LOCALFLOW_ADMIN_PASSWORD`` instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from localflow.config import settings
from localflow.secrets import files


def write(path: Path, password: str) -> None:
    """Write the SimpleAuthManager passwords file, so the api-server uses our password, not a random one."""
    content = json.dumps({settings.ADMIN_USER: password})
    if path.exists() and path.read_text(encoding="utf-8") == content:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    files.replace(path, content)
