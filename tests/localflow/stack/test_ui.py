"""Airflow's UI as a new user meets it after ``python -m localflow up``, in a real headless Chromium.

The stack test proves the REST API; this one proves the pages a person uses: the login form takes the
admin password from ``.env`` (and refuses a wrong one), the example DAGs are listed, a DAG triggered
with the UI's own Trigger button runs to success on the page, the line its task printed is in the task's
log view, and a broken DAG file shows in the DAG list's import-error dialog. With
``LOCALFLOW_SCREENSHOTS=docs/images`` these tests also make the README's pictures (docs/development.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localflow.polling import wait_until
from testkit.browser import Browser, chromium
from testkit.environment import EXAMPLE_DAGS
from testkit.native_stack import RunningStack, running_stack

pytestmark = pytest.mark.stack

# What example_etl's last task prints (dags/example_etl.py), just before it returns.
LOADED_LINE = "Loaded 3 orders, total 1236.70"
BROKEN_FILE = "broken_dag.py"
BROKEN_SOURCE = "from airflow.sdk import dag\n\nimport a_module_nobody_installed\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[RunningStack]:
    """One stack on the fresh-machine default (SQLite) for the module's tests."""
    workspace = tmp_path_factory.mktemp("workspace")
    with running_stack(workspace, None) as running:
        yield running


@pytest.fixture
def browser(tmp_path) -> Iterator[Browser]:
    """A new headless Chromium, not logged in."""
    with chromium(tmp_path) as opened:
        yield opened


def test_admin_logs_in_sees_the_dags_and_runs_one(stack, browser):
    """Log in, see every example DAG, trigger one, see it succeed and the line its task printed."""
    # Parsed: what a user who opens the UI a little later finds.
    with stack.output_on_timeout():
        stack.api.wait_for_dags(EXAMPLE_DAGS)
    browser.open(f"{stack.url}/dags/example_etl")

    # Not logged in: the login form, which refuses a wrong password.
    browser.wait_for("//*[normalize-space()='Sign into Airflow']", "the login page")
    browser.log_in("admin", "not-the-password")
    browser.wait_for("//*[normalize-space()='Invalid credentials']", "the wrong-password message")
    assert "/auth/login" in browser.url

    # The password from .env: back to the page asked for.
    browser.log_in("admin", stack.admin_password)
    # The UI's Trigger button: the page shows the new run, and each of its three tasks, succeed.
    run_id = browser.trigger_and_wait("example_etl")
    task_succeeded = "//td[@data-testid='table-cell-state'][normalize-space()='Success']"
    browser.wait_for(f"({task_succeeded})[3]", "three tasks succeeding")
    assert len(browser.driver.find_elements("xpath", task_succeeded)) == 3, browser.text()
    status, run = stack.api.request("GET", f"/api/v2/dags/example_etl/dagRuns/{run_id}")
    assert status == 200, run
    assert (run["state"], run["run_type"], run["triggering_user_name"]) == ("success", "manual", "admin")

    # The last task printed a line just before it returned: shown in its log, not folded away.
    browser.open_task_log(stack.url, "example_etl", run_id, "load")
    browser.wait_for_log_line(LOADED_LINE)
    browser.save_for_docs("task-log.png")

    browser.open(f"{stack.url}/dags")
    browser.wait_for_dag_list(EXAMPLE_DAGS)
    browser.save_for_docs("dag-list.png")


def test_a_broken_dag_file_shows_in_the_import_errors(stack, browser):
    """A DAG file that fails to import: the DAG list's badge opens the file's name and its error."""
    (stack.workspace / "dags" / BROKEN_FILE).write_text(BROKEN_SOURCE)
    with stack.output_on_timeout():
        wait_until(lambda: BROKEN_FILE in stack.api.import_errors(), 120, interval=1, what="the import error")

    browser.open(f"{stack.url}/dags")
    browser.log_in("admin", stack.admin_password)
    dialog = browser.open_import_errors()
    browser.wait_for(
        f"//*[@role='dialog']//*[contains(normalize-space(), '{BROKEN_FILE}')]", "the file's name"
    )
    browser.wait_for(
        "//*[@role='dialog']//*[contains(normalize-space(), \"No module named 'a_module_nobody_installed'\")]",
        "the error",
    )
    assert BROKEN_FILE in dialog.text, dialog.text


PRINTING_DAG = """
import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"))
def prints_then_returns():
    @task
    def say(number: int) -> int:
        print(f"printed by {number}")
        return number

    say.expand(number=list(range(8)))


prints_then_returns()
"""


def test_printed_lines_are_not_folded_into_post_execute(stack):
    """A line printed right before the task returns comes before Airflow's "Post Execute" group in the log
    the UI shows (it had the supervisor's later time stamp: localflow/stack/task_output.py)."""
    (stack.workspace / "dags" / "prints_then_returns.py").write_text(PRINTING_DAG)
    run_id = stack.trigger("prints_then_returns")
    assert stack.wait_for_run("prints_then_returns", run_id) == "success"
    for number in range(8):
        events = stack.api.task_log("prints_then_returns", run_id, "say", map_index=number)
        printed = events.index(f"printed by {number}")
        assert printed < events.index("::group::Post Execute"), events
