"""Remote task logs on S3, opt-in: ``LOCALFLOW_REMOTE_LOGS=s3://BUCKET/FOLDER`` in ``.env`` turns them on.

Airflow's own remote logging does the work (the task supervisor uploads each log, the api-server reads it
back), with the Amazon provider's S3 handler and the connection ``localflow_s3``. The settings it takes
are in ``remote_logs.env`` beside this module, which docker-compose.yaml reads too; this module fills them
in for a native run, checks the switch, and says whether the bucket lives on the local S3 server
(``stack/s3_server.py``) or elsewhere. Without the switch nothing here changes anything. docs/logs.md.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from localflow.config import envfile, registry
from localflow.errors import LocalflowError

SWITCH = "LOCALFLOW_REMOTE_LOGS"
SETTINGS_FILE = Path(__file__).resolve().parent / "remote_logs.env"
LOCK_FILE = "requirements-s3.txt"  # what bootstrap.py installs while the switch is on
PROVIDER = "apache-airflow-providers-amazon"
CONN_ID = "localflow_s3"
CONN_VARIABLE = "AIRFLOW_CONN_LOCALFLOW_S3"
CONN_ID_SETTING = "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID"
# The local S3 server natively: 127.0.0.1 and this port (in compose: the `s3` service, port 9000).
PORT_SETTING = "LOCALFLOW_S3_PORT"
DEFAULT_PORT = "9000"
ENDPOINT_SETTING = "LOCALFLOW_S3_ENDPOINT"
PROFILE = "s3"  # compose's profile of the local S3 server, turned on by .env's COMPOSE_PROFILES line
DOC = "docs/logs.md"
# S3's bucket naming rules (lower case, digits, dots, hyphens; 3 to 63 characters), then an optional folder.
LOCATION = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<folder>\S*))?")
# Compose's interpolation, the two forms remote_logs.env uses: ${NAME} and ${NAME:-default}.
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}")


def enabled(env: Mapping[str, str]) -> bool:
    """True when the switch is set (to anything: a bad value is an error, not "off")."""
    return bool(env.get(SWITCH, "").strip())


def bucket(env: Mapping[str, str]) -> str:
    """The bucket the switch names; one line naming the fix when it is not ``s3://BUCKET[/FOLDER]``."""
    value = env.get(SWITCH, "").strip()
    match = LOCATION.fullmatch(value)
    if not match:
        raise LocalflowError(
            f"{SWITCH}={value!r} is not an S3 location: write s3://BUCKET/FOLDER "
            f"(e.g. s3://localflow-logs/logs) in .env, or remove the line to keep task logs local ({DOC})."
        )
    return match["bucket"]


def _fill_in(text: str, env: Mapping[str, str]) -> str:
    """``${NAME}`` and ``${NAME:-default}`` as compose fills them in (unset or empty takes the default)."""
    return VARIABLE.sub(lambda m: env.get(m["name"]) or (m["default"] or ""), text)


def airflow_settings(env: Mapping[str, str]) -> dict[str, str]:
    """The settings of ``remote_logs.env``, filled in from ``env``."""
    return {name: _fill_in(value, env) for name, value in envfile.load(SETTINGS_FILE).items()}


def apply(env: MutableMapping[str, str]) -> None:
    """With the switch on, add the remote logging settings to a native environment; what it has wins.

    The local server's address is added first, so that the default connection points at it.
    """
    if not enabled(env):
        return
    bucket(env)
    env.setdefault(PORT_SETTING, DEFAULT_PORT)
    env.setdefault(ENDPOINT_SETTING, f"http://127.0.0.1:{env[PORT_SETTING]}")
    for name, value in airflow_settings(env).items():
        env.setdefault(name, value)


def uses_local_server(env: Mapping[str, str], settings_file: Path) -> bool:
    """True when the logs go to the local S3 server: the switch is on, with the default connection.

    A ``localflow_s3`` of the user's own (airflow_settings.yaml, read as the secrets backend reads it, or
    ``AIRFLOW_CONN_LOCALFLOW_S3`` in .env), or another ``[logging] remote_log_conn_id``, means a real
    bucket: nothing local to start.
    """
    if not enabled(env) or env.get(CONN_ID_SETTING, CONN_ID) != CONN_ID:
        return False
    if env.get(CONN_VARIABLE) != airflow_settings(env)[CONN_VARIABLE]:
        return False
    # Imported here: PyYAML is not for the quick commands that import this module (`secrets get`).
    from localflow.config import settings_yaml

    return CONN_ID not in settings_yaml.read(settings_file).connections


def check_compose_profile(env: Mapping[str, str], settings_file: Path) -> None:
    """In compose, the local S3 server runs only with its profile: one line when .env leaves it off.

    .env.example's ``COMPOSE_PROFILES=${LOCALFLOW_REMOTE_LOGS:+s3}`` turns it on, but compose reads .env
    top to bottom: a switch added below that line is not seen by it.
    """
    if uses_local_server(env, settings_file) and PROFILE not in registry.profiles(env):
        raise LocalflowError(
            f"{SWITCH} is set, but compose did not start the local S3 server (profile {PROFILE}): put "
            f"COMPOSE_PROFILES=${{{SWITCH}:+{PROFILE}}} on a line below {SWITCH} in .env ({DOC})."
        )


def provider_installed() -> bool:
    """True when the Amazon provider is installed (asked of the package metadata: importing ``airflow``
    with remote logging on and no provider fails in Airflow's logging set-up)."""
    try:
        importlib.metadata.distribution(PROVIDER)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def check_installed(env: Mapping[str, str], in_container: bool) -> None:
    """With the switch on, the Amazon provider must be installed; else one line on how to install it."""
    if not enabled(env) or provider_installed():
        return
    fix = (
        "rebuild the image (`docker compose build`; compose passes the switch to it as a build arg)"
        if in_container
        else "run `python3 -m localflow up`, which installs them into .venv"
    )
    raise LocalflowError(f"{SWITCH} is set, but the S3 packages ({LOCK_FILE}) are not installed: {fix}.")


def summary(env: Mapping[str, str], local_server: bool) -> str:
    """One line for ``up``'s greeting: where task logs go ("" while they stay local)."""
    if not enabled(env):
        return ""
    where = (
        f"the local S3 server {env.get(ENDPOINT_SETTING, '')}"
        if local_server
        else f"connection {env.get(CONN_ID_SETTING, CONN_ID)}"
    )
    return f"  task logs: {env[SWITCH].strip()} ({where})\n"
