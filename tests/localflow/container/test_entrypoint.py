"""The image's entrypoint: the one line of .env that switches compose's Airflow services to Celery."""

from __future__ import annotations

import pytest

from localflow.container.entrypoint import choose_executor

AIRFLOW_ENV = "localflow.stack.executor.LocalExecutor"  # what airflow.env sets

# COMPOSE_PROFILES (None: unset), the executor every Airflow service then runs
CASES = [
    (None, AIRFLOW_ENV),
    ("", AIRFLOW_ENV),
    ("celery", "CeleryExecutor"),
    ("celery,flower", "CeleryExecutor"),
    (" flower , celery ", "CeleryExecutor"),
    ("flower", AIRFLOW_ENV),
    ("celeryx", AIRFLOW_ENV),
]


@pytest.mark.parametrize(("profiles", "executor"), CASES)
def test_the_celery_profile_chooses_the_celery_executor(profiles: str | None, executor: str):
    """It sets the CeleryExecutor when the ``celery`` profile is on, and leaves airflow.env's otherwise."""
    environ = {"AIRFLOW__CORE__EXECUTOR": AIRFLOW_ENV}
    if profiles is not None:
        environ["COMPOSE_PROFILES"] = profiles
    choose_executor(environ)
    assert environ["AIRFLOW__CORE__EXECUTOR"] == executor
