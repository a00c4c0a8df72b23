"""Where things live and which Airflow settings are in force: the one place the runner and tests ask.

The Airflow settings themselves are in ``airflow.env`` beside this file, which docker-compose.yaml reads
too. This module adds what depends on the machine (paths, the database, the API address) for a native run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from localflow import envfile

WORKSPACE = Path(os.environ.get("LOCALFLOW_WORKSPACE", Path(__file__).resolve().parent.parent))
SHARED_SETTINGS_FILE = Path(__file__).resolve().parent / "airflow.env"
ENV_FILE_NAME = ".env"
STATE_DIR_NAME = ".airflow"  # AIRFLOW_HOME of native runs: database, logs, generated passwords file
PASSWORDS_FILE_NAME = "simple_auth_manager_passwords.json"
ADMIN_USER = "admin"
# What turns a localflow switch off (LOCALFLOW_PRELOAD, LOCALFLOW_WARM_RUNNER). debug.py keeps its own
# copy: it is loaded in every task process, which must not import this module's dotenv.
OFF_WORDS = frozenset({"0", "false", "no", "off"})
# Set by the image: the lock is installed system-wide and compose provides the Airflow environment.
IN_CONTAINER = os.environ.get("LOCALFLOW_CONTAINER") == "1"


def shared_settings() -> dict[str, str]:
    """Airflow settings shared by compose, the native runner and the tests."""
    return envfile.load(SHARED_SETTINGS_FILE)


def native_environment(
    workspace: Path = WORKSPACE, base: Mapping[str, str] | None = None, *, read_env_file: bool = True
) -> dict[str, str]:
    """The environment every native Airflow process runs with.

    Precedence, lowest first: the shared settings, the workspace's ``.env``, then ``base`` (the caller's
    own environment), so a variable set in the shell or by a test always wins.
    """
    base = dict(os.environ if base is None else base)
    state = workspace / STATE_DIR_NAME
    env = {
        "AIRFLOW_HOME": str(state),
        "AIRFLOW__CORE__DAGS_FOLDER": str(workspace / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(workspace / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{state / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(state / "logs"),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(state / "bundles"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(state / PASSWORDS_FILE_NAME),
        **shared_settings(),
    }
    env_file = workspace / ENV_FILE_NAME
    if read_env_file and env_file.exists():
        env.update(envfile.load(env_file))
    env.update(base)
    # The example connection points at the stack's own PostgreSQL when the metadata database is one.
    database_url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if database_url.startswith("postgresql"):
        env.setdefault("AIRFLOW_CONN_LOCALFLOW_POSTGRES", "postgresql://" + database_url.split("://", 1)[1])
    # Tasks reach the api-server's execution API; it must follow wherever the api-server listens.
    env.setdefault(
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        f"http://{api_host(env)}:{env['AIRFLOW__API__PORT']}/execution/",
    )
    return env


def current_environment() -> dict[str, str]:
    """The Airflow environment of this run: compose's inside a container, else the native one."""
    return dict(os.environ) if IN_CONTAINER else native_environment()


def api_host(env: Mapping[str, str]) -> str:
    """The address clients use to reach the api-server (a wildcard bind is reached on loopback)."""
    host = env.get("AIRFLOW__API__HOST", "127.0.0.1")
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host


def api_url(env: Mapping[str, str]) -> str:
    """Base URL of the api-server (UI and REST API)."""
    return f"http://{api_host(env)}:{env.get('AIRFLOW__API__PORT', '8080')}"
