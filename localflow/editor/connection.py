"""The running stack's REST API as the editor's commands reach it, and what they say when it is down."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from localflow import rest
from localflow.config import settings
from localflow.secrets import store
from localflow.secrets.rules import ADMIN_PASSWORD
from localflow.watcher.reparse import api_base_url

START_HINT = "start it with `python -m localflow up` (natively) or Reopen in Container"


def client(env: Mapping[str, str], timeout: float = 10) -> rest.AirflowClient:
    """The api-server of this workspace's stack (compose's from the dev container), logged in as admin.

    The password is read at each login, so a stack started after this command still lets it in.
    """

    def password() -> str:
        return env.get(ADMIN_PASSWORD) or store.load(settings.WORKSPACE).get(ADMIN_PASSWORD, "")

    return rest.AirflowClient(api_base_url(env), settings.ADMIN_USER, password, timeout=timeout)


def not_running(api: rest.AirflowClient) -> str:
    """One line for a stack that does not answer, saying how to start it."""
    return f"no Airflow stack answers at {api.base_url}: {START_HINT}"


def folders(env: Mapping[str, str]) -> tuple[Path, Path]:
    """The DAGs and plugins folders the stack parses (``[core] dags_folder``, ``plugins_folder``)."""
    return (
        Path(env.get("AIRFLOW__CORE__DAGS_FOLDER") or settings.WORKSPACE / "dags"),
        Path(env.get("AIRFLOW__CORE__PLUGINS_FOLDER") or settings.WORKSPACE / "plugins"),
    )
