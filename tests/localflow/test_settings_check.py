"""A mistyped Airflow setting in .env is caught before Airflow silently ignores it."""

from __future__ import annotations

import pytest

from localflow import settings, settings_check

# variable, expected fragment of the message (None: accepted)
CASES = (
    ("AIRFLOW__CORE__PARALLELISM", None),
    ("AIRFLOW__CORE__FERNET_KEY_CMD", None),
    ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET", None),
    ("AIRFLOW__POSTGRES__AZURE_OAUTH_SCOPE", None),  # a provider's option
    ("AIRFLOW_CONN_MY_DB", None),
    ("LOCALFLOW_ADMIN_PASSWORD", None),
    ("AIRFLOW__CORE__PARALELISM", "did you mean AIRFLOW__CORE__PARALLELISM?"),
    ("AIRFLOW__SCHEDULR__PARSING_PROCESSES", "has no section [schedulr]"),
    ("AIRFLOW__CORE__NO_SUCH_THING", "[core] has no option no_such_thing"),
)


@pytest.fixture(scope="module")
def known():
    """Airflow's own list of sections and options."""
    return settings_check.known_options()


@pytest.mark.parametrize(("name", "expected"), CASES)
def test_unknown_settings(known, name: str, expected: str | None):
    """Known options (and their _CMD/_SECRET forms) pass; typos are named with a suggestion."""
    problems = settings_check.unknown_settings({name: "1"}, known)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0]


def test_shared_settings_are_all_known(known):
    """Every setting in localflow/airflow.env is one Airflow knows (a typo there would be ignored)."""
    assert settings_check.unknown_settings(settings.shared_settings(), known) == []
