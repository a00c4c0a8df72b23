"""Whether the metadata database already has the installed Airflow's schema, found without importing Airflow.

``airflow db migrate`` takes about 3 s even when there is nothing to migrate (the CLI's own start, then its
checks). ``prepare`` (``up``, compose's airflow-init) runs it only when the database's alembic revision is
not the newest of the installed Airflow's migration scripts, or when a setting may add migrations of its own.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

from localflow import releases
from localflow.errors import LocalflowError
from localflow.secrets import keyguard

REVISION = re.compile(r"^revision\s*=\s*['\"](\w+)['\"]", re.MULTILINE)
DOWN_REVISION = re.compile(r"^down_revision\s*=(.*)$", re.MULTILINE)  # one revision, a tuple of them, None
QUOTED = re.compile(r"['\"](\w+)['\"]")
# Settings that bring migrations of their own (an auth manager's tables, external database managers):
# with one of them set, `airflow db migrate` always runs.
OWN_MIGRATIONS = ("AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__DATABASE__EXTERNAL_DB_MANAGERS")


def _revisions() -> tuple[set[str], set[str]]:
    """Every revision of the installed Airflow's migration scripts, and those another one builds on."""
    spec = importlib.util.find_spec("airflow")
    if spec is None or not spec.submodule_search_locations:
        return set(), set()
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (Path(spec.submodule_search_locations[0]) / "migrations" / "versions").glob("*.py"):
        text = script.read_text(encoding="utf-8")
        revisions.update(REVISION.findall(text))
        for line in DOWN_REVISION.findall(text):
            parents.update(QUOTED.findall(line))
    return revisions, parents


def head_revisions() -> set[str]:
    """The revisions no migration script of the installed Airflow builds on (alembic's heads)."""
    revisions, parents = _revisions()
    return revisions - parents


def known_revisions() -> set[str]:
    """Every revision the installed Airflow's migration scripts know: a database at another is newer."""
    return _revisions()[0]


def newer_than_installed(current: set[str]) -> str | None:
    """The one-line refusal for a database at revisions ``current`` the installed Airflow does not know
    (migrated by a newer release, which alone has the scripts to downgrade it), or None."""
    known = known_revisions()
    unknown = sorted(current - known)
    if not known or not unknown:
        return None
    release = importlib.metadata.version("apache-airflow")
    heads = " ".join(sorted(head_revisions()))
    return (
        f"the metadata database is at revision {', '.join(unknown)}, which Airflow {release} does not know: "
        f"a newer release migrated it, and only that one can downgrade it. Nothing was changed. Either set "
        f"{releases.SETTING} in .env back to that release and run `python3 -m localflow airflow db "
        f"downgrade --to-revision {heads}`, then choose {release} again; or point "
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN at another database (natively: move .airflow/airflow.db aside)"
    )


def database_revisions(env: Mapping[str, str]) -> set[str]:
    """The alembic revisions the database of ``env`` is at (none when it is new or unreachable)."""
    engine = keyguard.metadata_engine(env)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("alembic_version"):
                return set()
            return set(connection.scalars(sa.text("SELECT version_num FROM alembic_version")))
    except sa.exc.SQLAlchemyError:
        return set()
    finally:
        engine.dispose()


def refuse_downgrade(env: Mapping[str, str]) -> None:
    """Stop, touching nothing, when the database of ``env`` was migrated by a newer Airflow than installed."""
    refusal = newer_than_installed(database_revisions(env))
    if refusal:
        raise LocalflowError(refusal)


def is_current(env: Mapping[str, str]) -> bool:
    """The database of ``env`` is at the installed Airflow's head revision; False when unsure."""
    if any(env.get(name) for name in OWN_MIGRATIONS):
        return False
    heads = head_revisions()
    return bool(heads) and database_revisions(env) == heads
