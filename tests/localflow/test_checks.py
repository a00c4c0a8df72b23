"""``python -m localflow check``, what CI runs on a user's DAGs, on a temporary copy of the workspace.

It passes on the shipped DAGs; a DAG file that fails one step fails the check with one line naming the
step and the file, and leaves the other steps to run. It never writes the workspace's ``.env``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

from testkit.environment import REPO
from testkit.native_stack import make_workspace, run_localflow, stack_environment

AIRFLOW_2_DAG = '''"""A DAG written for Airflow 2: it runs, but ruff's AIR rules flag it."""

from __future__ import annotations

import pendulum
from airflow.decorators import dag, task


@dag(
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    tags=["generated"],
    default_args={"owner": "tests", "retries": 1},
)
def airflow_2_style():
    """A DAG without an explicit schedule."""

    @task
    def step() -> int:
        """Return one."""
        return 1

    step()


airflow_2_style()
'''

FAILING_TASK_DAG = '''"""A DAG whose only task raises."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    tags=["generated"],
    default_args={"owner": "tests", "retries": 1},
)
def failing_task():
    """A DAG that fails."""

    @task
    def explode() -> None:
        """Raise."""
        raise ValueError("no good")

    explode()


failing_task()
'''


# A user's first DAG, as Airflow's tutorials write one: no docstrings, an Optional, a loop ruff's SIM
# would rewrite. The check holds dags/ to the rules that catch DAG bugs, not to the workspace's style.
ORDINARY_DAG = """from __future__ import annotations

from typing import Optional

import pendulum
from airflow.sdk import dag, task


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    tags=["mine"],
    default_args={"owner": "me", "retries": 1},
)
def my_first_dag():
    @task
    def hello(name: Optional[str] = None) -> str:
        if name is None:
            return "hello"
        else:
            return f"hello {name}"

    hello()


my_first_dag()
"""


class Case(NamedTuple):
    """A workspace to check, and what the check says of it."""

    id: str
    added: dict[str, str]  # DAG files written into dags/ (name: source)
    keep_examples: bool  # a failure case runs without the shipped examples, to stay quick
    env_file: str | None  # the workspace's .env (None: a fresh clone has none)
    code: int
    failures: list[str]  # the lines the check ends with, one per failed step


CASES = (
    Case("shipped-dags", {}, True, None, 0, []),
    Case("ordinary-dag", {"my_first_dag.py": ORDINARY_DAG}, False, None, 0, []),
    Case("lint-error", {"airflow_2_style.py": AIRFLOW_2_DAG}, False, None, 1, ["ruff check: dags/airflow_2_style.py"]),
    Case(
        "failing-dag-test",
        {"failing_task.py": FAILING_TASK_DAG},
        False,
        "AIRFLOW_VAR_MINE=kept\n",
        1,
        ["dag-test dags/failing_task.py: failing_task finished: failed"],
    ),
)  # fmt: skip


def summed_up(output: str) -> list[str]:
    """The failures listed at the end of the check's output (none when it passed)."""
    tail = output.rsplit("localflow check: ", 1)[1]
    return [line.strip() for line in tail.splitlines()[1:]]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_check(tmp_path: Path, case: Case):
    """It exits 0 or 1 and ends with one line per failed step, naming the file; .env stays as it was."""
    workspace = make_workspace(tmp_path)
    shutil.copy2(REPO / "pyproject.toml", workspace)  # ruff's settings, as in a clone
    if not case.keep_examples:
        for path in (workspace / "dags").glob("example_*.py"):
            path.unlink()
    for name, source in case.added.items():
        (workspace / "dags" / name).write_text(source)
    if case.env_file is not None:
        (workspace / ".env").write_text(case.env_file)
    result = run_localflow(stack_environment(workspace, None), "check")
    output = result.stdout + result.stderr
    assert result.returncode == case.code, output[-6000:]
    assert summed_up(output) == case.failures, output[-6000:]
    if case.code == 0:
        assert result.stdout.rstrip().splitlines()[-1].startswith("localflow check: everything passed")
    else:
        assert f"localflow check: {len(case.failures)} failed" in output
    env_file = workspace / ".env"
    assert (env_file.read_text() if env_file.exists() else None) == case.env_file
    assert not (workspace / ".airflow").exists()
