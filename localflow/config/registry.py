"""Every setting the workspace reads or writes: name, kind, default, one line of help, who reads it.

Standard library only, and no other localflow import: the bootstrap (before anything is installed), the
container's entrypoint and the modules Airflow loads in its own processes (the secrets backend, the
executor, the debugger support in tasks) read their settings through here too. ``docs/configuration.md``
and ``.env.example`` are checked against this table (tests/localflow/config/test_registry.py).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Where `python -m localflow` finds the workspace: LOCALFLOW_WORKSPACE, else the checkout this package
# is in (in the image the package lives in /opt/localflow, so compose sets LOCALFLOW_WORKSPACE).
PACKAGE_CHECKOUT = Path(__file__).resolve().parents[2]
# The user's connections and variables (config/settings_yaml.py reads it) and the example it is made from.
SETTINGS_FILE_NAME = "airflow_settings.yaml"
SETTINGS_EXAMPLE_NAME = "airflow_settings.example.yaml"

# The one rule for on/off switches: these words (any case), or empty for the switch's default.
ON_WORDS = frozenset({"1", "true", "yes", "on"})
OFF_WORDS = frozenset({"0", "false", "no", "off"})

# Who may set a setting. USER: .env (or the shell); INTERNAL: set by the workspace for its own processes;
# TEST: read by tests/, testkit/ and benchmarks/ only.
# OWNED: one of Airflow's settings that the workspace decides (.env may set it, the shell never).
USER, INTERNAL, TEST, OWNED = "user", "internal", "test", "owned"


@dataclass(frozen=True)
class Setting:
    """One variable of the workspace's environment."""

    name: str
    kind: str  # switch, number, port, text, choice, location, list, path, secret, url
    default: str | None
    help: str
    readers: tuple[str, ...]
    scope: str = USER
    choices: tuple[str, ...] = ()


def _user(name, kind, default, help, *readers, choices=()):
    return Setting(name, kind, default, help, readers, USER, choices)


def _internal(name, kind, help, *readers):
    return Setting(name, kind, None, help, readers, INTERNAL)


def _test(name, kind, help, *readers):
    return Setting(name, kind, None, help, readers, TEST)


SETTINGS: tuple[Setting, ...] = (
    # Secrets, generated into .env (secrets/rules.py); the AIRFLOW__* secrets are below.
    _user("LOCALFLOW_ADMIN_PASSWORD", "secret", None, "password of the UI and REST API user admin",
          "secrets", "stack.supervisor", "watcher"),
    # The Airflow release (docs/releases.md; the table of releases is localflow/releases.py).
    _user("LOCALFLOW_AIRFLOW_VERSION", "release", "3.3.2", "the Airflow release: 3.0.6, 3.1.8, 3.2.2 or "
          "3.3.2 (another 3.x patch: untested); the next command rebuilds .venv for it", "bootstrap",
          "secrets.schema"),
    # Debugging (docs/debugging.md).
    _user("LOCALFLOW_DEBUG_TASKS", "list", "", "tasks (dag_id or dag_id.task_id, * for all, "
          "comma-separated) that wait for a debugger before they run", "debugging.support"),
    _user("LOCALFLOW_DEBUG_PORT", "port", "5678", "port a waiting task listens on for the debugger",
          "debugging.support"),
    _user("LOCALFLOW_DEBUG_WAIT", "number", "600", "seconds a task waits for the debugger to attach",
          "debugging.support"),
    _user("LOCALFLOW_DEBUG_HOST", "text", "127.0.0.1", "address a waiting task listens on (compose's Celery "
          "workers: 0.0.0.0)", "debugging.support"),
    _user("LOCALFLOW_WARM_RUNNER", "switch", "on", "F5 forks from a background process that imported "
          "Airflow once; off runs each F5 in a fresh interpreter", "debugging.warm_runner"),
    _user("LOCALFLOW_WARM_RUNNER_IDLE", "number", "1800", "seconds the warm runner waits for a run before "
          "it exits", "debugging.warm_runner"),
    # The native stack (docs/performance.md, docs/celery.md).
    _user("LOCALFLOW_PRELOAD", "switch", "on", "fork the native components from one process that imported "
          "Airflow once; off starts each as its own airflow process", "stack.supervisor"),
    _user("LOCALFLOW_WAKEUPS", "switch", "off", "wake the scheduler and dag-processor by PostgreSQL "
          "notifications or SQLite's loopback datagrams (airflow.env turns it on)", "stack.wakeups"),
    _user("LOCALFLOW_CELERY_WORKERS", "number", "1", "how many Celery workers the native stack runs",
          "stack.supervisor"),
    _user("LOCALFLOW_CELERY_HEALTH_INTERVAL", "number", "30", "seconds between the native stack's checks "
          "that each Celery worker consumes", "stack.supervisor"),
    _user("LOCALFLOW_COMPONENT_LOG_MAX_MB", "number", "20", "size in MiB past which a component's log in "
          ".airflow/logs/components is rotated to NAME.log.1; 0: never", "stack.supervisor"),
    _user("LOCALFLOW_STALL_TIMEOUT", "number", "90", "seconds a running scheduler, triggerer or dag-processor "
          "may go without a heartbeat before the native stack restarts it; 0: never", "stack.supervisor"),
    _user("LOCALFLOW_TASK_LOGS_TO_STDOUT", "switch", "off", "also copy each task log line to the scheduler's "
          "output (Airflow's default; the task log is where the UI shows it)", "stack.executor"),
    _user("LOCALFLOW_SLOW_IMPORT", "number", "3", "seconds past which a plugin or DAG file's import is named "
          "with its time (up, F5, dag-test)", "import_timing"),
    # The dag watcher.
    _user("LOCALFLOW_WATCH", "choice", "auto", "how the dag watcher sees saves: file events, polling, or off",
          "watcher", choices=("auto", "events", "poll", "off")),
    _user("LOCALFLOW_WATCH_POLL_INTERVAL", "number", "0.5", "seconds between the dag watcher's looks when "
          "it polls", "watcher"),
    # Task logs on S3 (docs/logs.md).
    _user("LOCALFLOW_REMOTE_LOGS", "location", "", "s3://BUCKET/FOLDER: task logs go to S3 (installs "
          "requirements-s3.txt)", "config.remote_logs", "bootstrap"),
    _user("LOCALFLOW_S3_PORT", "port", "9000", "port of the local S3 server natively (on 127.0.0.1)",
          "config.remote_logs", "stack.s3_server"),
    _user("LOCALFLOW_S3_HOST", "text", "127.0.0.1", "address the local S3 server listens on (compose: "
          "0.0.0.0)", "stack.s3_server"),
    _user("LOCALFLOW_S3_ENDPOINT", "url", None, "the S3 endpoint of the default connection localflow_s3 "
          "(natively the local server's address)", "config.remote_logs"),
    # Compose's own switches, which the native stack honours too.
    _user("COMPOSE_PROFILES", "list", "", "compose profiles: celery (the CeleryExecutor, natively too), "
          "flower, s3", "config.settings", "config.remote_logs", "container.entrypoint"),
    _user("LOCALFLOW_IMAGE", "text", "localflow-airflow:latest", "name of the image compose builds from "
          "./Dockerfile", "docker-compose.yaml"),
    _user("LOCALFLOW_BIND_ADDRESS", "text", "127.0.0.1", "host address compose publishes the UI port on",
          "docker-compose.yaml"),
    # Where things are.
    _internal("LOCALFLOW_WORKSPACE", "path", "the workspace folder (default: the checkout of this package; "
              "compose sets it)", "config.registry"),
    _internal("LOCALFLOW_SETTINGS_FILE", "path", "airflow_settings.yaml to read instead of the workspace's "
              "(check's dag-test on a fresh clone)", "secrets.backend"),
    # Between the workspace's own processes.
    _internal("LOCALFLOW_CONTAINER", "switch", "set to 1 by the image", "config.settings", "bootstrap"),
    _internal("LOCALFLOW_CALLER_ENV", "switch", "set to 1 by a caller that builds the environment on "
              "purpose (tests): every value in it wins", "config.settings"),
    _internal("LOCALFLOW_PREPARED", "text", "set by the process that read .env, for the processes it "
              "starts: they use their environment as it is", "config.settings"),
    _internal("LOCALFLOW_BOOTSTRAPPED", "switch", "set for the command the bootstrap re-executed in .venv, "
              "which then syncs the optional locks", "bootstrap"),
    _internal("LOCALFLOW_STACK_ID", "text", "the native stack every process of it belongs to",
              "stack.ownership"),
    _internal("LOCALFLOW_STACK_LOCK_FD", "number", "the supervisor's open lock, kept across execve",
              "stack.ownership"),
    _internal("LOCALFLOW_WORKER_NAME", "text", "a native Celery worker's name", "stack.workers"),
    # Airflow's settings that the workspace decides, whatever the shell exports (docs/safety.md, "Your
    # shell"): .env may set them, a shell never does; also in their _CMD and _SECRET forms.
    *(
        Setting(name, "airflow", None, help, ("config.settings",), OWNED)
        for name, help in (
            ("AIRFLOW_HOME", "the native Airflow's home: .airflow/ (database, logs, passwords file)"),
            ("AIRFLOW_CONFIG", "its airflow.cfg, in AIRFLOW_HOME"),
            ("AIRFLOW__CORE__DAGS_FOLDER", "dags/ of the workspace"),
            ("AIRFLOW__CORE__PLUGINS_FOLDER", "plugins/ of the workspace"),
            ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "the metadata database: SQLite in .airflow/ by default"),
            ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC", "its async form (derived by Airflow when unset)"),
            ("AIRFLOW__LOGGING__BASE_LOG_FOLDER", "task logs: .airflow/logs"),
            ("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH", ".airflow/bundles"),
            ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "the admin password file in .airflow/"),
            ("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "where tasks reach the api-server"),
            ("AIRFLOW__CORE__FERNET_KEY", "secret, generated into .env: encrypts connections and variables"),
            ("AIRFLOW__API_AUTH__JWT_SECRET", "secret, generated into .env: signs the components' tokens"),
            ("AIRFLOW__API__SECRET_KEY", "secret, generated into .env: signs the UI's session cookies"),
        )
    ),
    # The test suite's.
    _test("LOCALFLOW_TEST_POSTGRES", "url", "the PostgreSQL server the tests use", "testkit.environment"),
    _test("LOCALFLOW_CHROMIUM", "path", "the Chromium of the UI tests", "testkit.browser"),
    _test("LOCALFLOW_CHROMEDRIVER", "path", "the ChromeDriver of the UI tests", "testkit.browser"),
    _test("LOCALFLOW_SCREENSHOTS", "path", "folder the UI tests save the README's pictures into",
          "tests.localflow.stack.test_ui"),
    _test("LOCALFLOW_ENGINE_DIR", "path", "where ../shared/containers keeps the container engine (its env.sh "
          "exports it)", "testkit.containers"),
    _test("LOCALFLOW_SHARED_CONTAINERS", "path", "the container engine scripts", "testkit.containers"),
    _test("LOCALFLOW_CODE_SERVER_HOME", "path", "where the VS Code tests' code-server is installed (default "
          "~/.cache/localflow/code-server)", "testkit.code_server"),
)  # fmt: skip

BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
OWNED_NAMES = frozenset(setting.name for setting in SETTINGS if setting.scope == OWNED) | {
    "LOCALFLOW_ADMIN_PASSWORD"
}
PREFIX = "LOCALFLOW_"
CELERY_PROFILE = "celery"  # COMPOSE_PROFILES=celery: the CeleryExecutor, in compose and natively


def workspace(environ: Mapping[str, str] = os.environ) -> Path:
    """The workspace folder: ``LOCALFLOW_WORKSPACE``, else the checkout this package is in."""
    return Path(environ.get("LOCALFLOW_WORKSPACE") or PACKAGE_CHECKOUT)


def value(env: Mapping[str, str], name: str) -> str:
    """The value of ``name`` in ``env``, stripped, else its default ("" when it has none)."""
    found = env.get(name, "").strip()
    return found or (BY_NAME[name].default or "")


def switch(env: Mapping[str, str], name: str) -> bool:
    """The one rule for switches: on/off words in any case; empty or unset is the switch's default.

    A word that is neither counts as the default here; ``problems`` names it.
    """
    word = value(env, name).lower()
    return word in ON_WORDS if word in ON_WORDS | OFF_WORDS else BY_NAME[name].default in ON_WORDS


def nearest(name: str, names=BY_NAME) -> str | None:
    """The known name closest to a mistyped one, if any is close."""
    found = difflib.get_close_matches(name, list(names), n=1, cutoff=0.75)
    return found[0] if found else None


def problems(env: Mapping[str, str]) -> list[str]:
    """One message per ``LOCALFLOW_*`` name the workspace does not know, or switch/number it cannot read."""
    found = []
    for name in sorted(env):
        setting = BY_NAME.get(name)
        if setting is None:
            if name.startswith(PREFIX):
                guess = nearest(name)
                hint = f"; did you mean {guess}?" if guess else ""
                found.append(f"{name}: the workspace has no such setting{hint}")
            continue
        raw = env[name].strip()
        if not raw or setting.scope != USER:
            continue
        if setting.kind == "switch" and raw.lower() not in ON_WORDS | OFF_WORDS:
            found.append(f"{name}={raw!r}: a switch is on or off")
        elif setting.kind == "choice" and raw.lower() not in setting.choices:
            found.append(f"{name}={raw!r}: choose one of {', '.join(setting.choices)}")
        elif setting.kind in {"number", "port"} and not _is_number(raw, whole=setting.kind == "port"):
            found.append(f"{name}={raw!r}: {'a port' if setting.kind == 'port' else 'a number'} is expected")
    return found


def _is_number(raw: str, *, whole: bool) -> bool:
    if whole:
        return raw.isdigit() and 0 < int(raw) < 65536
    try:
        return float(raw) >= 0
    except ValueError:
        return False


def profiles(env: Mapping[str, str]) -> set[str]:
    """The Compose profiles ``env`` turns on (``COMPOSE_PROFILES``, comma-separated, spaces ignored)."""
    return {name.strip() for name in env.get("COMPOSE_PROFILES", "").split(",") if name.strip()}


def markdown_table(scopes: tuple[str, ...] = (USER,)) -> str:
    """The settings of ``scopes`` as docs/configuration.md's table (``python -m localflow.config.registry``)."""
    rows = ["| setting | kind | default | what it does | read by |", "|---|---|---|---|---|"]
    for setting in SETTINGS:
        if setting.scope in scopes:
            kind = f"{setting.kind}: {', '.join(setting.choices)}" if setting.choices else setting.kind
            default = f"`{setting.default}`" if setting.default else ""
            readers = ", ".join(f"`{reader}`" for reader in setting.readers)
            rows.append(f"| `{setting.name}` | {kind} | {default} | {setting.help} | {readers} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import sys

    print(markdown_table(tuple(sys.argv[1:]) or (USER,)))
