"""Where things live and which Airflow settings are in force: the one place the runner and tests ask.

The Airflow settings themselves are in ``airflow.env`` beside this file, which docker-compose.yaml reads
too. This module adds what depends on the machine (paths, the database, the API address) for a native run,
and decides which variables of the user's shell apply (docs/safety.md, "Your shell").
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

from localflow.config import codespaces, envfile, registry, remote_logs

WORKSPACE = registry.workspace()
SHARED_SETTINGS_FILE = Path(__file__).resolve().parent / "airflow.env"
ENV_FILE_NAME = ".env"
SETTINGS_FILE_NAME = registry.SETTINGS_FILE_NAME  # connections and variables (config/settings_yaml.py)
SETTINGS_EXAMPLE_NAME = registry.SETTINGS_EXAMPLE_NAME
STATE_DIR_NAME = ".airflow"  # AIRFLOW_HOME of native runs: database, logs, generated passwords file
PASSWORDS_FILE_NAME = "simple_auth_manager_passwords.json"
ADMIN_USER = "admin"
# Set by the image: the lock is installed system-wide and compose provides the Airflow environment.
IN_CONTAINER = os.environ.get("LOCALFLOW_CONTAINER") == "1"
# One line in .env runs the stack on Airflow's CeleryExecutor, natively and in compose alike (docs/celery.md):
# `COMPOSE_PROFILES=celery`, Compose's own switch of the profile that adds Redis and the workers. Natively
# the broker is the Redis of AIRFLOW__CELERY__BROKER_URL, by default the machine's.
CELERY_EXECUTOR = "CeleryExecutor"
NATIVE_BROKER_URL = "redis://127.0.0.1:6379/0"
CELERY_WORKERS = "LOCALFLOW_CELERY_WORKERS"  # how many workers the native stack runs (default 1)


def shared_settings() -> dict[str, str]:
    """Airflow settings shared by compose, the native runner and the tests."""
    return envfile.load(SHARED_SETTINGS_FILE)


# What the workspace decides, whatever the shell exports: where its Airflow keeps its state and finds its
# code, and its secrets (registry.OWNED). Many users `export AIRFLOW_HOME=~/airflow` in their profile (and
# VS Code inherits it): such a value would point this workspace at another Airflow's files and database,
# with another Fernet key. .env may set any of these; a shell never does. Also in their *_CMD and *_SECRET
# forms, which Airflow reads when the plain variable is unset. The secrets are secrets/rules.py's (a test
# keeps them so).
WORKSPACE_OWNED = registry.OWNED_NAMES
# Set to 1 by a caller that builds the environment on purpose (the tests, testkit/): then every variable
# in it wins, over .env too. A user's shell is never trusted like that.
CALLER_ENV = "LOCALFLOW_CALLER_ENV"
SHELL_DOC = "docs/safety.md#your-shell"
# Set by the process that read .env (``up``) in the environment it hands its children (the supervisor,
# the components, the dag watcher): they take their environment as it is instead of reading .env again.
PREPARED = "LOCALFLOW_PREPARED"


def workspace_owns(name: str) -> bool:
    """True for a setting only the workspace (its defaults or .env) decides, never the shell."""
    return any(name.removesuffix(suffix) in WORKSPACE_OWNED for suffix in ("", "_CMD", "_SECRET"))


def without_owned(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the settings the workspace owns (what a shell may not decide)."""
    return {name: value for name, value in environ.items() if not workspace_owns(name)}


def home_settings(home: Path) -> dict[str, str]:
    """What an Airflow home holds: the home itself, its SQLite database, task logs, bundles, passwords file.

    ``.airflow/`` for native runs; a throwaway folder for what must write nothing of the workspace's
    (``check``'s dag-test, the settings check of ``test`` and ``check``).
    """
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(home / "bundles"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE_NAME),
    }


def native_environment(
    workspace: Path = WORKSPACE, base: Mapping[str, str] | None = None, *, read_env_file: bool = True
) -> dict[str, str]:
    """The environment every native Airflow process runs with.

    ``base`` is the caller's environment (default: this process's, i.e. the user's shell). Precedence,
    highest first: the workspace's ``.env``; ``base``, without what the workspace owns
    (``WORKSPACE_OWNED``); the shared settings and the workspace's own paths and SQLite database. A
    ``base`` marked with ``CALLER_ENV=1`` wins over everything instead.
    """
    base = dict(os.environ if base is None else base)
    env = {
        **home_settings(workspace / STATE_DIR_NAME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(workspace / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(workspace / "plugins"),
        **shared_settings(),
    }
    env_file = workspace / ENV_FILE_NAME
    own = envfile.load(env_file) if read_env_file and env_file.exists() else {}
    if base.get(CALLER_ENV) == "1":
        env.update(own)
        env.update(base)
    else:
        env.update(without_owned(base))
        env.update(own)
    if registry.CELERY_PROFILE in registry.profiles(env):
        env["AIRFLOW__CORE__EXECUTOR"] = CELERY_EXECUTOR
        env.setdefault("AIRFLOW__CELERY__BROKER_URL", NATIVE_BROKER_URL)
    # Remote task logs on S3 when .env turns them on (remote_logs.env, the same settings compose uses).
    remote_logs.apply(env)
    # Set, not left to Airflow's default: code that adds this to its own environment (os.environ.update)
    # must replace a shell's AIRFLOW_CONFIG, whose file may set another database or DAGs folder.
    env.setdefault("AIRFLOW_CONFIG", str(Path(env["AIRFLOW_HOME"]) / "airflow.cfg"))
    # The example connection points at the stack's own PostgreSQL when the metadata database is one.
    database_url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    if database_url.startswith("postgresql"):
        env.setdefault("AIRFLOW_CONN_LOCALFLOW_POSTGRES", "postgresql://" + database_url.split("://", 1)[1])
    # In a Codespace the browser reaches the UI through the forwarder's https address, which Airflow must
    # know for the links it makes and the login links it accepts; an AIRFLOW__API__BASE_URL of .env or the
    # shell wins.
    public_url = codespaces.base_url(env, env["AIRFLOW__API__PORT"])
    if public_url:
        env[codespaces.BASE_URL] = public_url
    # Tasks reach the api-server's execution API; it must follow wherever the api-server listens. Always
    # set: left unset, Airflow derives it from [api] base_url, i.e. tasks would go through a public proxy.
    env.setdefault(
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        f"http://{api_host(env)}:{env['AIRFLOW__API__PORT']}/execution/",
    )
    return env


def uses_celery(env: Mapping[str, str]) -> bool:
    """True when ``env`` runs Airflow's CeleryExecutor (by the profile, or named in .env)."""
    return env.get("AIRFLOW__CORE__EXECUTOR", "").rsplit(".", 1)[-1] == CELERY_EXECUTOR


def ignored_from_shell(env: Mapping[str, str], base: Mapping[str, str]) -> list[str]:
    """The names in ``base`` (the shell) that ``env`` does not use as they are: the workspace's or .env's win."""
    if base.get(CALLER_ENV) == "1" or base.get(PREPARED) == "1":
        return []
    return sorted(name for name, value in base.items() if env.get(name) != value)


def shell_notice(names: list[str]) -> str:
    """The one line that tells the user which of their shell's variables this command ignores."""
    return (
        f"localflow: ignoring {', '.join(names)} from your shell: this workspace sets its own "
        f"(see {SHELL_DOC})"
    )


def use_environment(env: Mapping[str, str]) -> None:
    """Make ``env`` this process's whole environment, so that no variable it leaves out stays behind, and
    take its warning filters (``take_warning_options``)."""
    os.environ.clear()
    os.environ.update(env)
    take_warning_options()


def take_warning_options() -> None:
    """Take ``PYTHONWARNINGS`` of the environment in force, as the stack's components do at start.

    Python reads it only at start, and a command (``dag-test``, F5 without the warm runner) puts
    airflow.env into its environment after that: without this its filters would not hold, and Airflow,
    seeing no warning options, would show the deprecation warnings of its own code (pathspec's, about
    Airflow's use of ``GitWildMatchPattern``, twice per run) that the stack does not show.
    """
    options = [option for option in os.environ.get("PYTHONWARNINGS", "").split(",") if option.strip()]
    new = [option for option in options if option not in sys.warnoptions]
    if new:
        sys.warnoptions.extend(new)
        warnings._processoptions(new)  # what the interpreter does with PYTHONWARNINGS at start


def current_environment() -> dict[str, str]:
    """The Airflow environment of this run: compose's inside a container, the one ``up`` prepared in the
    processes it started, else the native one (which reads .env)."""
    if IN_CONTAINER or os.environ.get(PREPARED) == "1":
        return dict(os.environ)
    return native_environment()


def api_host(env: Mapping[str, str]) -> str:
    """The address clients use to reach the api-server (a wildcard bind is reached on loopback)."""
    host = env.get("AIRFLOW__API__HOST", "127.0.0.1")
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host


def api_url(env: Mapping[str, str]) -> str:
    """Base URL of the api-server (UI and REST API)."""
    return f"http://{api_host(env)}:{env.get('AIRFLOW__API__PORT', '8080')}"


def ui_url(env: Mapping[str, str]) -> str:
    """Where a person opens the UI: ``[api] base_url`` when set, else a Codespace's forwarded address (a
    terminal of the dev container has not the entrypoint's base_url, only the Codespace's variables)."""
    return codespaces.base_url(env, env.get("AIRFLOW__API__PORT", "8080")) or api_url(env)
