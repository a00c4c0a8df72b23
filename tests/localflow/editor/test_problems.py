"""``python -m localflow problems`` as VS Code runs it: the task of .vscode/tasks.json started before the
stack, its problem matcher applied to the real output of the real stack, as VS Code's Problems panel shows it.

Each case saves broken files into the stack's workspace, waits for the panel to show each problem at its
file, line and column, then saves the fixed files and waits for the panel to be empty again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from localflow.polling import wait_until
from testkit.environment import free_port
from testkit.native_stack import stack_environment
from testkit.vscode_tasks import Marker, ProblemMatcher, task

from .conftest import PROBLEMS_TASK, Editor, task_environment

PATIENCE = 15.0  # seconds from a save to the panel; measured ~1-2 s on an idle 2-core machine

TYPO = '''"""A DAG with a typo."""

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["test"])
def typo_dag():
    @task
    def step(:
        return 1
'''
HELPER = '''"""A helper of plugins/ that breaks at import."""


def rate() -> float:
    return 1 / 0


RATE = rate()
'''
USES_HELPER = '''"""A DAG importing a helper of plugins/."""

import pendulum
from airflow.sdk import dag, task
from shaky_helper import RATE


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["test"])
def uses_shaky():
    @task
    def step() -> float:
        return RATE

    step()


uses_shaky()
'''
VARYING = '''"""A DAG whose start date changes at every parse (Airflow's own DAG warning)."""

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.now(), tags=["test"])
def varying_dag():
    @task
    def step() -> int:
        return 1

    step()


varying_dag()
'''
LOOKUP = '''"""A DAG reading a variable at its top level, so at every parse."""

import pendulum
from airflow.sdk import Variable, dag, task

LIMIT = Variable.get("editor_limit", default="3")


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["test"])
def reads_limit():
    @task
    def step() -> str:
        return LIMIT

    step()


reads_limit()
'''
FIXED_TYPO = TYPO.replace("def step(:", "def step():") + "\n    step()\n\n\ntypo_dag()\n"

# case: files saved first, parsed without a problem (path in the workspace -> text); files saved broken;
# the markers expected; the files saved fixed
CASES = {
    "syntax error at its line and column": (
        {},
        {"dags/typo_dag.py": TYPO},
        {("dags/typo_dag.py", 10, 14, "error", "SyntaxError: invalid syntax")},
        {"dags/typo_dag.py": FIXED_TYPO},
    ),
    # A DAG that worked, until a helper it imports broke.
    "broken helper at the helper's line, and the DAG's import": (
        {
            "plugins/shaky_helper.py": HELPER.replace("RATE = rate()", "RATE = 0.5"),
            "dags/uses_shaky.py": USES_HELPER,
        },
        {"plugins/shaky_helper.py": HELPER},
        {
            ("plugins/shaky_helper.py", 5, 12, "error", "ZeroDivisionError: division by zero"),
            (
                "dags/uses_shaky.py",
                5,
                1,
                "error",
                "importing this file failed in plugins/shaky_helper.py:5: ZeroDivisionError: division by zero",
            ),
        },
        {"plugins/shaky_helper.py": HELPER.replace("RATE = rate()", "RATE = 0.5")},
    ),
    "Airflow's DAG warning at the line it names": (
        {},
        {"dags/varying_dag.py": VARYING},
        {
            (
                "dags/varying_dag.py",
                7,
                1,
                "warning",
                "Don't use runtime-varying value as argument in Dag constructor "
                "(Airflow: runtime varying value, DAG varying_dag)",
            )
        },
        {"dags/varying_dag.py": VARYING.replace("pendulum.now()", 'pendulum.datetime(2025, 1, 1, tz="UTC")')},
    ),
    # The workspace's own warning, recorded by the stack (localflow/stack/parse_lookups.py).
    "a top-level Variable.get at its line and column": (
        {},
        {"dags/reads_limit.py": LOOKUP},
        {
            (
                "dags/reads_limit.py",
                6,
                9,
                "warning",
                "reads variable 'editor_limit' at parse time: move it into a task, or use a template such as "
                "{{ var.value.editor_limit }} (Airflow: runtime varying value, DAG reads_limit)",
            )
        },
        {
            "dags/reads_limit.py": LOOKUP.replace(
                'LIMIT = Variable.get("editor_limit", default="3")\n', ""
            ).replace("return LIMIT", 'return Variable.get("editor_limit", default="3")')
        },
    ),
}


def matcher(editor: Editor) -> ProblemMatcher:
    """The problems task's matcher, its variables resolved for the workspace VS Code has open."""
    return ProblemMatcher.of(task(PROBLEMS_TASK, editor.workspace))


def shown(editor: Editor, markers: list[Marker] | None) -> set[tuple]:
    """The panel's markers as (workspace path, line, column, severity, message)."""
    return {
        (m.file.relative_to(editor.workspace).as_posix(), m.line, m.column, m.severity, m.message)
        for m in markers or []
    }


def panel_shows(editor: Editor, expected: set[tuple], what: str) -> float:
    """Wait until the Problems panel shows exactly ``expected``; return how long that took."""
    started = time.monotonic()
    wait_until(
        lambda: shown(editor, matcher(editor).panel(editor.problems_lines())) == expected,
        PATIENCE,
        interval=0.1,
        what=lambda: f"{what}; the task printed:\n" + "\n".join(editor.problems_lines()[-30:]),
    )
    return time.monotonic() - started


def save(workspace: Path, files: dict[str, str]) -> None:
    """Save files as an editor does."""
    for name, text in files.items():
        (workspace / name).write_text(text)


def problems_once(env: dict[str, str]) -> subprocess.CompletedProcess:
    """``python -m localflow problems --once`` in the workspace."""
    return subprocess.run(
        [sys.executable, "-m", "localflow", "problems", "--once"],
        cwd=env["LOCALFLOW_WORKSPACE"],
        env=task_environment(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.stack
def test_the_task_waits_for_the_stack_then_shows_a_clean_workspace(editor: Editor):
    """Started before the stack, the task says how to start it, keeps trying, and once the stack is up
    prints a first batch: the example DAGs have no problem, so the panel is empty, not missing."""
    panel_shows(editor, set(), "a first, empty batch")
    lines = editor.problems_lines()
    waiting = f"localflow problems: no Airflow stack answers at {editor.stack.url}: start it with "
    assert lines[0].startswith(waiting) and "`python -m localflow up`" in lines[0], lines[:3]
    assert "trying again" in lines[0]
    assert matcher(editor).marker(lines[0]) is None  # no problem of its own in the panel
    assert editor.problems.poll() is None


@pytest.mark.stack
@pytest.mark.parametrize(("before", "broken", "expected", "fixed"), CASES.values(), ids=CASES.keys())
def test_a_save_shows_in_the_panel_and_its_fix_clears_it(editor: Editor, before, broken, expected, fixed):
    """Saved broken: each problem at its file, line and column; `--once` exits 1 with the same lines.
    Saved fixed: the panel is empty again and `--once` exits 0."""
    if before:
        save(editor.workspace, before)
        dag_ids = [Path(name).stem for name in before if name.startswith("dags/")]
        editor.stack.api.wait_for_dags(dag_ids, timeout=PATIENCE)
    save(editor.workspace, broken)
    took = panel_shows(editor, expected, "the problems of the saved files")
    print(f"in the panel {took:.1f} s after the save")
    once = problems_once(editor.stack.env)
    assert once.returncode == 1, once.stdout + once.stderr
    assert shown(editor, matcher(editor).panel(once.stdout.splitlines())) == expected

    save(editor.workspace, fixed)
    took = panel_shows(editor, set(), "an empty panel after the fix")
    print(f"cleared {took:.1f} s after the fix")
    once = problems_once(editor.stack.env)
    assert (once.returncode, once.stdout.splitlines()[-1]) == (0, "localflow problems: 0 found"), once.stdout


@pytest.mark.stack
def test_batches_are_framed_by_the_background_patterns(editor: Editor):
    """Every batch the task printed begins and ends with lines the matcher's background patterns match, so
    VS Code knows when a batch replaces the last; problems come only inside a batch, and what the task says
    between batches (no stack yet, say) is no problem and no frame."""
    found = matcher(editor)
    inside, batches = False, 0
    for line in editor.problems_lines():
        if found.begins.search(line):
            assert not inside, line
            inside = True
        elif found.ends.search(line):
            assert inside, line
            inside, batches = False, batches + 1
        elif found.marker(line):
            assert inside, f"a problem outside a batch: {line}"
        else:
            assert not inside and line.startswith("localflow problems: "), line
    assert batches >= 1 and batches == len(found.batches(editor.problems_lines()))


def test_without_a_stack_once_says_how_to_start_one(tmp_path: Path):
    """No stack at the port: one line saying how to start it, exit 2 (neither "none" nor "some")."""
    env = stack_environment(tmp_path, None, AIRFLOW__API__PORT=str(free_port()))
    once = problems_once(env)
    assert once.returncode == 2, once.stdout + once.stderr
    assert once.stdout == ""
    assert "no Airflow stack answers" in once.stderr and "`python -m localflow up`" in once.stderr
