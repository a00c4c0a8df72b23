"""Whether the metadata database already has the installed Airflow's schema, found without importing Airflow.

``airflow db migrate`` takes about 3 s even when there is nothing to migrate (the CLI's own start, then its
checks). ``prepare`` (``up``, compose's airflow-init) runs it only when the database's alembic revision is
not the newest of the installed Airflow's migration scripts, or when a setting may add migrations of its own.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

from localflow.secrets import keyguard

REVISION = re.compile(r"^revision\s*=\s*['\"](\w+)['\"]", re.MULTILINE)
DOWN_REVISION = re.compile(r"^down_revision\s*=(.*)$", re.MULTILINE)  # one revision, a tuple of them, None
QUOTED = re.compile(r"['\"](\w+)['\"]")
# Settings that bring migrations of their own (an auth manager's tables, external database managers):
# with one of them set, `airflow db migrate` always runs.
OWN_MIGRATIONS = ("AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__DATABASE__EXTERNAL_DB_MANAGERS")


def head_revisions() -> set[str]:
    """The revisions no migration script of the installed Airflow builds on (alembic's heads)."""
    spec = importlib.util.find_spec("airflow")
    if spec is None or not spec.submodule_search_locations:
        return set()
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (Path(spec.submodule_search_locations[0]) / "migrations" / "versions").glob("*.py"):
        text = script.read_text(encoding="utf-8")
        revisions.update(REVISION.findall(text))
        for line in DOWN_REVISION.findall(text):
            parents.update(QUOTED.findall(line))
    return revisions - parents


def is_current(env: Mapping[str, str]) -> bool:
    """The database of ``env`` is at the installed Airflow's head revision; False when unsure."""
    if any(env.get(name) for name in OWN_MIGRATIONS):
        return False
    heads = head_revisions()
    engine = keyguard.metadata_engine(env)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("alembic_version"):
                return False
            current = set(connection.scalars(sa.text("SELECT version_num FROM alembic_version")))
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()
    return bool(heads) and current == heads
