"""What must hold before any Airflow component starts: secrets, checked settings, admin password, database.

It also makes ``airflow_settings.yaml`` (connections and variables, read by ``backend``) from its example.

The native ``up`` and compose's ``airflow-init`` (``python -m localflow init``) both run ``prepare``, so a
workspace is made ready the same way whichever way it is started.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from localflow.airflow_cli import run_airflow
from localflow.config import envfile, remote_logs, settings, validation
from localflow.errors import LocalflowError
from localflow.secrets import files, keyguard, passwords, schema, store
from localflow.secrets.rules import ADMIN_PASSWORD, SECRETS


def make_state_private(workspace: Path) -> None:
    """``.airflow/`` (database, task logs, passwords file) readable by its owner only.

    Task logs and the SQLite database hold XComs, rendered templates and whatever a task printed; Airflow
    creates them world-readable (0644), so the folder is what keeps other local users out.
    """
    state = workspace / settings.STATE_DIR_NAME
    try:
        state.mkdir(mode=0o700, exist_ok=True)
    except OSError as error:
        raise LocalflowError(f"cannot create {state}: {error.strerror}; is the workspace writable?") from None
    if state.stat().st_mode & 0o077 and state.stat().st_uid == os.geteuid():
        state.chmod(0o700)


def ensure_settings_file(workspace: Path) -> None:
    """Make ``airflow_settings.yaml`` from its example, once, with mode 0600 (it will hold passwords).

    An existing file, or a symbolic link even to nothing, is never written (``files.write_new``).
    """
    path = workspace / settings.SETTINGS_FILE_NAME
    example = workspace / settings.SETTINGS_EXAMPLE_NAME
    if not os.path.lexists(path) and example.is_file():
        files.write_new(path, files.read(example))


def ensure_secrets(workspace: Path, env: Mapping[str, str], *, settings_file: bool = True) -> list[str]:
    """Make or complete ``.env`` and (unless told not to) make ``airflow_settings.yaml``; a new Fernet key
    only while the database holds nothing encrypted.

    Returns the names of the secrets generated.
    """
    make_state_private(workspace)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)  # the guard opens a SQLite file there
    generated = store.ensure(workspace, may_generate=keyguard.generation_guard(env))
    if settings_file:
        ensure_settings_file(workspace)
    return generated


def prepare(workspace: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Secrets, settings check, key guard, admin password, migrated database, in that order.

    Returns ``env`` with the secrets of ``.env`` under it (the process environment still wins).
    """
    # A mistake in a complete .env stops here, before anything is written (one with a secret missing goes
    # first to ensure_secrets, whose key guard says best what a missing Fernet key means).
    env_file = workspace / settings.ENV_FILE_NAME
    existing = envfile.load(env_file) if env_file.exists() else None
    complete = existing is not None and all(existing.get(secret.name) for secret in SECRETS)
    if complete:
        validation.check(existing, settings.ENV_FILE_NAME)
    ensure_secrets(workspace, env, settings_file=False)  # made last: a failed start writes nothing new
    if not complete:  # read again only what ensure_secrets just wrote
        existing = store.load(workspace)
        validation.check(existing, settings.ENV_FILE_NAME)
    own_settings = existing
    effective = {**own_settings, **env}
    validation.check_parse_timeouts(effective)
    if remote_logs.enabled(effective):  # compose's airflow-init: the image must have what the switch needs
        remote_logs.bucket(effective)
        remote_logs.check_installed(effective, in_container=settings.IN_CONTAINER)
        if settings.IN_CONTAINER:
            remote_logs.check_compose_profile(effective, workspace / settings.SETTINGS_FILE_NAME)
    keyguard.check(effective)  # also the first contact with the database: nothing is written before it
    passwords.write(
        Path(effective["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]), effective[ADMIN_PASSWORD]
    )
    schema.refuse_downgrade(effective)  # a database a newer Airflow migrated: said, and left as it is
    if not schema.is_current(effective):
        run_airflow(["db", "migrate"], effective, "migrating the metadata database")
    ensure_settings_file(workspace)
    return effective


def init_container(env: dict[str, str]) -> int:
    """The compose ``airflow-init`` service: the same preparation as a native run, in the container."""
    prepare(settings.WORKSPACE, env)
    print("localflow: secrets ready, admin password set, database migrated.", flush=True)
    return 0
