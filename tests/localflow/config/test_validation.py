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


def test_the_whole_native_environment_is_known(known, tmp_path):
    """What every native process runs with (airflow.env, paths, remote logs off) gives no warning."""
    assert validation.problems(settings.native_environment(tmp_path, base={}), known) == []


TYPO_ENV = "LOCALFLOW_DEBUG_TASK=example_etl.transform\nAIRFLOW__CORE__PARALELISM=2\n"
WARNINGS = [
    "localflow: warning: unknown setting in your settings: LOCALFLOW_DEBUG_TASK: the workspace has no such "
    "setting; did you mean LOCALFLOW_DEBUG_TASKS?",
    "localflow: warning: unknown setting in your settings: AIRFLOW__CORE__PARALELISM: [core] has no option "
    "paralelism; did you mean AIRFLOW__CORE__PARALLELISM? (Airflow would ignore it).",
]
# Where a typo must not stop the user (a debug session, a look at Airflow, the checks): said, then on.
# (id, command, what its output shows it ran)
GOING_ON = (
    ("dag-test", ["dag-test", "{workspace}/dags/example_etl.py"], "example_etl finished: success"),
    ("airflow", ["airflow", "version"], "3."),
    ("test", ["test", "--collect-only", "-q", "tests/plugins"], "test_etl_helpers"),
)


@pytest.mark.parametrize(
    ("command", "expected"), [case[1:] for case in GOING_ON], ids=[c[0] for c in GOING_ON]
)
def test_every_entry_point_names_a_typo_and_goes_on(tmp_path, command: list[str], expected: str):
    """The same one line per mistake from F5's dag-test, the Airflow CLI and the tests; the command runs."""
    from testkit.native_stack import make_workspace, run_localflow, stack_environment

    workspace = make_workspace(tmp_path)
    env = stack_environment(workspace, None)
    assert run_localflow(env, "secrets").returncode == 0
    with (workspace / ".env").open("a") as env_file:
        env_file.write(TYPO_ENV)
    result = run_localflow(env, *(word.format(workspace=workspace) for word in command))
    assert result.returncode == 0, result.stdout + result.stderr
    assert expected in result.stdout
    said = [line for line in result.stderr.splitlines() if line.startswith("localflow: warning:")]
    assert said == WARNINGS, result.stderr


def test_up_refuses_a_typo_before_anything_starts(tmp_path):
    """`up` (and compose's init, the same prepare) refuses a mistyped LOCALFLOW_* name with the fix."""
    from testkit.native_stack import make_workspace, run_localflow, stack_environment

    workspace = make_workspace(tmp_path)
    env = stack_environment(workspace, None)
    assert run_localflow(env, "secrets").returncode == 0
    with (workspace / ".env").open("a") as env_file:
        env_file.write("LOCALFLOW_DEBUG_TASK=example_etl.transform\n")
    result = run_localflow(env, "up")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "localflow: unknown setting in .env: LOCALFLOW_DEBUG_TASK: the workspace has no such setting; "
        "did you mean LOCALFLOW_DEBUG_TASKS?"
    )
