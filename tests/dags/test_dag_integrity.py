"""Every DAG file imports cleanly the way the dag-processor loads it, and follows the team's policy.

Parsing reads connections and variables from airflow_settings.yaml like every Airflow process does. A
lookup at the top level of a DAG file is a warning naming the file and line, not a failure: it works, but
it runs at every parse (every 30 s and at every save), so it belongs in a task.
"""

from __future__ import annotations

import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

# Imported at collection (tests/conftest.py has set the environment): importing Airflow sets up its
# logging, which takes warnings.showwarning over, so the test that first imported it would lose its
# warnings to a log line instead of pytest's summary.
from airflow.dag_processing.dagbag import DagBag

from localflow.config import settings
from localflow.secrets import backend

# The workspace's DAGs: this repository's, or those of the workspace `python -m localflow check` is given.
DAGS_FOLDER = settings.WORKSPACE / "dags"
DAG_FILES = sorted(DAGS_FOLDER.glob("*.py"))


class ParseTimeLookupWarning(UserWarning):
    """A DAG file reads a connection or variable at its top level, so at every parse."""


@dataclass(frozen=True)
class Lookup:
    """A connection or variable read while a DAG file was imported, and the line that read it."""

    kind: str
    name: str
    path: Path
    line: int

    def warn(self) -> None:
        """Report it as a warning pointing at the DAG file's line (pytest's warnings summary shows it)."""
        warnings.warn_explicit(
            f"reads {self.kind} {self.name!r} at parse time (it runs at every parse): move it into a task, "
            "or use a template such as {{ var.value.NAME }} / {{ conn.ID.host }}",
            ParseTimeLookupWarning,
            filename=str(self.path),
            lineno=self.line,
        )


class _LookupRecorder(logging.Handler):
    """Notes which line of a DAG file each lookup came from; the backend logs every lookup at DEBUG."""

    def __init__(self, folder: Path) -> None:
        super().__init__(logging.DEBUG)
        self.folder = folder.resolve()
        self.lookups: list[Lookup] = []

    def emit(self, record: logging.LogRecord) -> None:
        frame = sys._getframe()  # emit runs inside the lookup: walk out to the DAG file's frame
        while frame:
            path = Path(frame.f_code.co_filename)
            if path.is_relative_to(self.folder):
                self.lookups.append(Lookup(*record.args, path, frame.f_lineno))
                return
            frame = frame.f_back


def parse_dags(folder: Path):
    """The DagBag of ``folder`` and the connection and variable lookups its files made while importing."""
    logger = logging.getLogger(backend.__name__)
    recorder = _LookupRecorder(folder)
    level = logger.level
    logger.addHandler(recorder)
    logger.setLevel(logging.DEBUG)
    try:
        bag = DagBag(dag_folder=str(folder))
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(level)
    return bag, recorder.lookups


def parse_and_report(folder: Path):
    """The DagBag of ``folder``, each lookup its files made while importing reported as a warning."""
    bag, lookups = parse_dags(folder)
    for lookup in lookups:
        lookup.warn()
    return bag


@pytest.fixture(scope="module")
def dagbag():
    """The DAGs folder parsed once; pytest's warnings summary lists its top-level lookups."""
    return parse_and_report(DAGS_FOLDER)


def test_dag_files_exist():
    """There are DAG files (so the parametrized tests below are never empty)."""
    assert DAG_FILES, f"no DAG files in {DAGS_FOLDER}"


def test_no_import_errors(dagbag):
    """No DAG file fails to import; each one that does is named with its error."""
    failed = [f"{Path(file).name} failed to import:\n{error}" for file, error in dagbag.import_errors.items()]
    if failed:  # the message alone (pytrace=False): pytest would repeat it as the asserted value
        pytest.fail("\n".join(failed), pytrace=False)


def dags_of(bag, path: Path) -> list:
    """The DAGs ``path`` defines, whatever their dag_id."""
    return [dag for dag in bag.dags.values() if Path(dag.fileloc).resolve() == path.resolve()]


def naming_problem(bag, path: Path) -> str | None:
    """Why ``path`` does not define the DAG named like the file, and how to fix it; None when it does."""
    if path.stem in bag.dag_ids or str(path) in bag.import_errors:  # test_no_import_errors says why
        return None
    found = ", ".join(sorted(repr(dag.dag_id) for dag in dags_of(bag, path))) or "none"
    return (
        f"{path.name} defines no DAG {path.stem!r} (its DAGs: {found}): name the file after its dag_id, "
        f"or give the DAG dag_id={path.stem!r} (the team's policy: one DAG per file, named like it)"
    )


def policy_problems(bag, path: Path) -> list[str]:
    """What the DAGs of ``path`` lack of the team's policy (tags, an owner, retries), each with its fix."""
    problems = []
    for dag in dags_of(bag, path):
        if not dag.tags:
            problems.append(f"{dag.dag_id} has no tags: add tags=[...] to its @dag (or DAG(...))")
        for task in dag.tasks:
            if not task.owner or task.owner == "airflow":
                problems.append(
                    f"{dag.dag_id}.{task.task_id} has no owner: set default_args={{'owner': 'you'}} on the DAG"
                )
            if task.retries < 1:
                problems.append(
                    f"{dag.dag_id}.{task.task_id} has no retries: set default_args={{'retries': 1}} on the DAG"
                )
    return problems


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda path: path.name)
def test_file_name_is_dag_id(dagbag, path: Path):
    """Each file defines the DAG named like the file."""
    problem = naming_problem(dagbag, path)
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda path: path.name)
def test_dag_policy(dagbag, path: Path):
    """Every DAG has tags, an owner and retries on its tasks (checked also when the file is misnamed)."""
    problems = policy_problems(dagbag, path)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


TOP_LEVEL_LOOKUPS = '''"""A DAG that reads a variable and a connection at its top level."""

from __future__ import annotations

import pendulum
from airflow.sdk import BaseHook, Variable, dag, task

LIMIT = Variable.get("localflow_test_limit", default="3")
try:
    HOST = BaseHook.get_connection("localflow_test_conn").host
except Exception:
    HOST = None


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    tags=["generated"],
    description=f"limit {LIMIT}, host {HOST}",
)
def top_level_lookups():
    @task
    def step() -> str:
        return LIMIT

    step()


top_level_lookups()
'''


def test_top_level_lookups_are_reported(tmp_path: Path, monkeypatch):
    """A file reading a variable and a connection at its top level parses with the values of
    airflow_settings.yaml; each lookup is one warning naming the file and the line that made it, as the
    DAGs folder's are reported (the shipped DAGs make none)."""
    settings = tmp_path / "airflow_settings.yaml"
    settings.write_text(
        "connections:\n  localflow_test_conn: postgres://db.example.com\n"
        "variables:\n  localflow_test_limit: 7\n"
    )
    monkeypatch.setenv("LOCALFLOW_SETTINGS_FILE", str(settings))
    dags = tmp_path / "dags"
    dags.mkdir()
    dag_file = dags / "top_level_lookups.py"
    dag_file.write_text(TOP_LEVEL_LOOKUPS)
    with pytest.warns(ParseTimeLookupWarning) as caught:
        bag = parse_and_report(dags)
    assert bag.import_errors == {}
    assert bag.dags["top_level_lookups"].description == "limit 7, host db.example.com"
    shown = sorted(
        (w.filename, w.lineno, str(w.message).split(" at ")[0])
        for w in caught
        if w.category is ParseTimeLookupWarning  # parsing may warn of other things too
    )
    assert shown == [
        (str(dag_file), 8, "reads variable 'localflow_test_limit'"),
        (str(dag_file), 10, "reads connection 'localflow_test_conn'"),
    ]


# A newcomer's first DAG, as Airflow's tutorial writes it, in a file not named after it.
TUTORIAL_DAG = """import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"))
def tutorial():
    @task
    def hello():
        print("hello")

    hello()


tutorial()
"""


def test_policy_failures_say_how_to_fix(tmp_path: Path):
    """A misnamed file is named with the DAGs it defines (not a KeyError), and its DAG is still held to
    the policy: each missing piece is one line saying what to add."""
    dag_file = tmp_path / "my_first.py"
    dag_file.write_text(TUTORIAL_DAG)
    bag = parse_and_report(tmp_path)
    assert naming_problem(bag, dag_file) == (
        "my_first.py defines no DAG 'my_first' (its DAGs: 'tutorial'): name the file after its dag_id, "
        "or give the DAG dag_id='my_first' (the team's policy: one DAG per file, named like it)"
    )
    broken = tmp_path / "broken.py"
    broken.write_text(TUTORIAL_DAG.replace('"UTC"))', '"UTC")'))
    assert str(broken) in parse_and_report(tmp_path).import_errors
    assert naming_problem(parse_and_report(tmp_path), broken) is None  # its import error is the failure
    assert policy_problems(bag, dag_file) == [
        "tutorial has no tags: add tags=[...] to its @dag (or DAG(...))",
        "tutorial.hello has no owner: set default_args={'owner': 'you'} on the DAG",
        "tutorial.hello has no retries: set default_args={'retries': 1} on the DAG",
    ]
