"""A mistyped Airflow setting in .env is caught before Airflow silently ignores it."""

from __future__ import annotations

import re

import pytest

from localflow.config import settings, validation
from localflow.errors import LocalflowError

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
    return validation.known_options()


@pytest.mark.parametrize(("name", "expected"), CASES)
def test_unknown_settings(known, name: str, expected: str | None):
    """Known options (and their _CMD/_SECRET forms) pass; typos are named with a suggestion."""
    problems = validation.unknown_settings({name: "1"}, known)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and expected in problems[0]


def test_shared_settings_are_all_known(known):
    """Every setting in localflow/config/airflow.env is one Airflow knows (a typo there would be ignored)."""
    assert validation.unknown_settings(settings.shared_settings(), known) == []


IMPORT, PROCESSOR = (
    "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT",
    "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT",
)


# settings, expected fragment of the message (None: accepted)
@pytest.mark.parametrize(
    ("values", "expected"),
    (
        ({}, None),  # Airflow's defaults: 30 s import timeout, 50 s kill
        ({IMPORT: "10"}, None),
        ({PROCESSOR: "15"}, f"{PROCESSOR} (15 s) must be longer than {IMPORT} (30 s"),
        ({IMPORT: "50"}, f"{PROCESSOR} (50 s) must be longer than {IMPORT} (50 s"),
        ({IMPORT: "0"}, "above 0"),
        ({IMPORT: "soon"}, "must be numbers of seconds"),
    ),
)
def test_parse_timeouts(values: dict[str, str], expected: str | None):
    """A hanging DAG file must time out as an import error before the dag-processor kills its parse."""
    if expected is None:
        validation.check_parse_timeouts(values)
    else:
        with pytest.raises(LocalflowError, match=re.escape(expected)):
            validation.check_parse_timeouts(values)
