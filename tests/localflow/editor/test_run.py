"""``python -m localflow run FILE`` as the task "localflow: run this DAG" starts it, on the real stack: the
task logs as they are written, the run's state and its address in the UI, the exit code."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from testkit.native_stack import failing_dag_source, make_workspace, stack_environment
from testkit.vscode_tasks import command_line, task

from .conftest import Editor, task_environment

RUN_TASK = "localflow: run this DAG"
FOLLOWED = '''"""A DAG whose task logs a line, waits, then logs another; slow to parse."""

import time

import pendulum
from airflow.sdk import dag, get_current_context, task

time.sleep(2)  # a slow parse: a run right after a save must wait for it, not run the version before


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["test"])
def followed():
    @task
    def show() -> None:
        context = get_current_context()
        print(f"first line, n={context['dag_run'].conf.get('n')}, logical date {context['logical_date']:%Y-%m-%d}")
        time.sleep(4)
        print("second line")

    show()


followed()
'''


def run_this_dag(editor: Editor, name: str, text: str, *extra: str) -> tuple[int, list[tuple[float, str]]]:
    """Save ``dags/NAME``, run the task on it (with ``extra`` arguments of the command); its exit code and
    each line it printed with when it came."""
    file = editor.workspace / "dags" / name
    file.write_text(text)
    resolved = task(RUN_TASK, editor.workspace, file)
    process = subprocess.Popen(
        [*command_line(resolved), *extra],
        cwd=resolved["options"]["cwd"],
        env=task_environment(editor.stack.env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = [(time.monotonic(), line.rstrip("\n")) for line in process.stdout]
    return process.wait(timeout=60), lines


def ui_address(editor: Editor, text: list[str], dag_id: str) -> str:
    """The run's address in the UI the command printed last, checked to be the run the API has."""
    prefix = "localflow run: in the UI: "
    assert text[-1].startswith(prefix), text
    url = text[-1].removeprefix(prefix)
    base = f"{editor.stack.url}/dags/{dag_id}/runs/"
    assert url.startswith(base), url
    run_id = urllib.parse.unquote(url.removeprefix(base))
    assert editor.stack.api.run(dag_id, run_id)["dag_run_id"] == run_id
    return url


@pytest.mark.stack
def test_a_run_that_succeeds_is_followed_as_it_logs(editor: Editor):
    """The task's lines come while it runs (the second some seconds after the first), with --conf and
    --logical-date as the UI's trigger form sets them; it ends with success, the UI's address, exit 0.
    Run right after a save, it runs what was saved: the stack had parsed an older version, whose task
    had another name."""
    older = FOLLOWED.replace("def show()", "def show_before()").replace("    show()\n", "    show_before()\n")
    (editor.workspace / "dags" / "followed.py").write_text(older)
    editor.stack.api.wait_for_dags(["followed"], timeout=60)
    code, lines = run_this_dag(
        editor, "followed.py", FOLLOWED, "--conf", '{"n": 3}', "--logical-date", "2025-02-03T00:00:00Z"
    )
    text = [line for _, line in lines]
    assert code == 0, "\n".join(text)
    when = {line: moment for moment, line in lines}
    first = "[show] first line, n=3, logical date 2025-02-03"
    assert first in when and "[show] second line" in when, "\n".join(text)
    assert when["[show] second line"] - when[first] > 2, "the first line came only with the second"
    assert not any(line.startswith("[show_before]") for line in text), "the version parsed before ran"
    assert any(line.endswith("finished: success") for line in text[-2:]), text
    url = ui_address(editor, text, "followed")
    with urllib.request.urlopen(url, timeout=30) as page:  # the UI serves the run's page
        assert page.status == 200


@pytest.mark.stack
def test_a_failed_task_shows_its_error_and_fails_the_task(editor: Editor):
    """A task that raises: its error with the DAG file's line in the terminal, the run failed, exit 1."""
    code, lines = run_this_dag(editor, "failing.py", failing_dag_source(0, 1))
    text = [line for _, line in lines]
    assert code == 1, "\n".join(text)
    source = failing_dag_source(0, 1).splitlines()
    raising = next(number for number, line in enumerate(source, 1) if "raise ValueError" in line)
    path = editor.workspace / "dags" / "failing.py"
    for expected in (
        "[explode] ERROR Task failed with exception",
        f'[explode]   File "{path}", line {raising}, in explode',
        "[explode] ValueError: no good: 3",
    ):
        assert expected in text, "\n".join(text)
    assert not any(line.startswith("[report]") for line in text)  # upstream failed: it never ran
    assert any(line.endswith("finished: failed") for line in text[-2:]), text
    ui_address(editor, text, "failing")


# arguments after FILE (None: FILE is outside dags/), what the one line says
BAD_INPUT = (
    (["--conf", "{n: 3}"], "--conf is not JSON"),
    (["--conf", "[3]"], "--conf must be a JSON object"),
    (None, "is not in the DAGs folder"),
)


@pytest.mark.parametrize(("extra", "said"), BAD_INPUT)
def test_bad_input_is_one_line(tmp_path: Path, extra: list[str] | None, said: str):
    """A mistake is one line saying what is wrong, exit 1, before any stack is asked (none runs here)."""
    workspace = make_workspace(tmp_path)
    file = workspace / "dags" / "example_etl.py" if extra is not None else tmp_path / "elsewhere.py"
    result = subprocess.run(
        [sys.executable, "-m", "localflow", "run", str(file), *(extra or [])],
        cwd=workspace,
        env=task_environment(stack_environment(workspace, None)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and said in result.stderr, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
