"""Is the metadata database migrated? Answered without Airflow, as Airflow's own alembic scripts say."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from localflow.secrets import keyguard, schema
from testkit.environment import airflow_environment


def test_heads_are_alembics():
    """The head found by reading the scripts is the one alembic finds by loading them."""
    from airflow.utils.db import _get_script_object

    assert schema.head_revisions() == set(_get_script_object().get_heads())


def test_a_new_database_is_not_current(tmp_path):
    """Nothing migrated yet: `airflow db migrate` must run."""
    assert not schema.is_current(airflow_environment(tmp_path, None))


CASES = (  # the database's revision (None: the head), settings, and whether it counts as current
    ("migrated", None, {}, True),
    ("an older revision", "9ff64e1c35d3", {}, False),
    ("an auth manager with tables of its own", None, {"AIRFLOW__CORE__AUTH_MANAGER": "x.Y"}, False),
)


@pytest.mark.parametrize(("case", "revision", "extra", "current"), CASES, ids=[case[0] for case in CASES])
def test_migrated_database(migrated_env, case, revision, extra, current):
    """Current only at the head revision, and only when no setting adds migrations of its own."""
    engine = keyguard.metadata_engine(migrated_env)
    with engine.begin() as connection:
        head = connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
        if revision:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    try:
        assert schema.is_current({**migrated_env, **extra}) is current, case
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": head})
        engine.dispose()


def test_known_revisions_are_alembics():
    """Every revision found by reading the scripts is one alembic knows, and none is missed."""
    from airflow.utils.db import _get_script_object

    assert schema.known_revisions() == {script.revision for script in _get_script_object().walk_revisions()}


@pytest.mark.parametrize(
    ("revision", "refused"),
    [(None, False), ("9ff64e1c35d3", False), ("a0b1c2d3e4f5", True)],
    ids=["head", "older", "newer"],
)
def test_only_a_revision_the_release_does_not_know_is_refused(revision, refused: bool):
    """The head and older revisions migrate as always; an unknown one (a newer release's) is refused."""
    current = schema.head_revisions() if revision is None else {revision}
    refusal = schema.newer_than_installed(current)
    assert bool(refusal) is refused
    if refused:
        assert (
            "a0b1c2d3e4f5" in refusal
            and "--to-revision " + " ".join(sorted(schema.head_revisions())) in refusal
        )
