"""Fernet key rotation: re-encrypt every stored secret with a new key, prove it, then drop the old key.

``python -m localflow rotate-fernet-key`` with ``AIRFLOW__CORE__FERNET_KEY=NEW,OLD`` in ``.env`` runs
Airflow's own ``airflow rotate-fernet-key``, checks with the key guard that NEW alone reads everything,
and only then rewrites the line in ``.env``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from localflow import airflow_cli
from localflow.config import settings
from localflow.errors import LocalflowError
from localflow.secrets import keyguard, store
from localflow.secrets.rules import FERNET_KEY


def rotate(workspace: Path, env: Mapping[str, str]) -> None:
    """Rotate to NEW of ``NEW,OLD`` (``airflow rotate-fernet-key``), prove it, keep only NEW in ``.env``."""
    keys = [part.strip() for part in env.get(FERNET_KEY, "").split(",") if part.strip()]
    if len(keys) < 2:
        raise LocalflowError(
            f"to rotate, set {FERNET_KEY}=NEW_KEY,OLD_KEY in .env first "
            "(`python -m localflow secrets new-fernet-key` prints a NEW_KEY)."
        )
    keyguard.check(env)
    airflow_cli.run_airflow(["rotate-fernet-key"], env, "re-encrypting with the new Fernet key")
    new_only = {**env, FERNET_KEY: keys[0]}
    counts = keyguard.undecryptable(new_only)
    if counts:
        raise LocalflowError(
            f"after rotation {keyguard.describe(counts)} still need an old key; {FERNET_KEY} in .env is unchanged."
        )
    store.set_value(workspace, FERNET_KEY, keys[0])
    print(
        f"localflow: re-encrypted {len(keyguard.encrypted_values(new_only))} values; .env now holds only the new key."
    )


def rotate_fernet_key(env: dict[str, str]) -> int:
    """The ``rotate-fernet-key`` command, on the workspace's ``.env`` and database."""
    env = {**store.load(settings.WORKSPACE), **env}
    rotate(settings.WORKSPACE, env)
    return 0
