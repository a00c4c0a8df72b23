"""Connections and variables from ``airflow_settings.yaml``: Airflow's secrets backend for the workspace.

``localflow/config/airflow.env`` configures it as ``[secrets] backend`` (api-server, scheduler, triggerer, CLI)
and ``[workers] secrets_backend`` (task processes, DAG parsing, ``dag.test()``), so every process that
runs DAG code asks it first, before ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` and the database. It is
imported inside every one of those processes: besides Airflow it imports only
``localflow.config.settings_yaml`` (the file's one reader: PyYAML and the standard library), never
``localflow.config.settings`` (dotenv) or another localflow module. Pools, which Airflow has no backend
for, are written by the scheduler (``localflow/stack/pools.py``) from the same reader.

Import Airflow before this module: Airflow imports it while it starts, and would find it half-imported.
"""

from __future__ import annotations

import logging
from pathlib import Path

from airflow.secrets import BaseSecretsBackend

from localflow.config import settings_yaml
from localflow.config.settings_yaml import FILE_NAME, Settings

__all__ = ["FILE_NAME", "LocalSettingsBackend"]

log = logging.getLogger(__name__)


class LocalSettingsBackend(BaseSecretsBackend):
    """Airflow secrets backend over the workspace's ``airflow_settings.yaml``.

    The base class is core's, like Airflow's own ``EnvironmentVariablesBackend`` that both the server and
    the task SDK search: each side sets the Connection class it needs (``_set_connection_class``) when it
    builds its backend list, so a connection is core's in the api-server and the SDK's in a task.
    """

    def __init__(self, settings_file: str | None = None) -> None:
        super().__init__()
        self._settings_file = Path(settings_file) if settings_file else None

    @property
    def path(self) -> Path:
        """The file, ``settings_file`` if given (``backend_kwargs``), else found anew at each lookup."""
        return self._settings_file or settings_yaml.settings_file()

    def settings(self) -> Settings:
        """The file's entries now (reparsed if it changed since the last lookup)."""
        return settings_yaml.read(self.path)

    def get_conn_value(self, conn_id: str, team_name: str | None = None) -> str | None:
        """The connection's URI or JSON, which the base class deserializes with Airflow's own parsers."""
        log.debug("%s %s looked up", "connection", conn_id)  # tests/dags/ reports top-level lookups
        return self.settings().connections.get(conn_id)

    def get_variable(self, key: str, team_name: str | None = None) -> str | None:
        """The variable's value (JSON for anything but a string)."""
        log.debug("%s %s looked up", "variable", key)
        return self.settings().variables.get(key)
