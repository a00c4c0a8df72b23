"""Airflow's UI as a new user meets it after ``python -m localflow up``, in a real headless Chromium.

The stack test proves the REST API; this one proves the pages a person uses: the login form takes the
admin password from ``.env`` (and refuses a wrong one), the example DAGs are listed, and a DAG triggered
with the UI's own Trigger button runs to success on the page.
"""

from __future__ import annotations

import pytest

from testkit.browser import chromium
from testkit.environment import EXAMPLE_DAGS
from testkit.native_stack import running_stack

pytestmark = pytest.mark.stack


def test_admin_logs_in_sees_the_dags_and_runs_one(tmp_path):
    """On the fresh-machine default (SQLite): log in, see every example DAG, trigger one, see it succeed."""
    workspace, artifacts = tmp_path / "workspace", tmp_path / "browser"
    workspace.mkdir()
    artifacts.mkdir()
    with running_stack(workspace, None) as stack, chromium(artifacts) as browser:
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
        browser.wait_for(
            "//button[@aria-label='Trigger Dag']", "the DAG page of example_etl", clickable=True
        ).click()
        # The dialog unpauses the DAG by default (new DAGs are paused), as a user would leave it.
        browser.wait_for(
            "//*[@role='dialog'][.//*[normalize-space()='Trigger Dag - example_etl']]"
            "//button[normalize-space()='Trigger']",
            "the Trigger button of the trigger dialog",
            clickable=True,
        ).click()

        # The UI opens the new run and shows it, and each of its three tasks, succeed.
        run_id = browser.wait_for("//h2[starts-with(normalize-space(), 'manual__')]", "the new run").text
        browser.wait_for(
            f"//h2[normalize-space()='{run_id}']/following-sibling::*[@data-testid='state-badge']"
            "[normalize-space()='Success']",
            f"{run_id} succeeding",
            timeout=180,
        )
        task_succeeded = "//td[@data-testid='table-cell-state'][normalize-space()='Success']"
        browser.wait_for(f"({task_succeeded})[3]", "three tasks succeeding")
        assert len(browser.driver.find_elements("xpath", task_succeeded)) == 3, browser.text()
        status, run = stack.api.request("GET", f"/api/v2/dags/example_etl/dagRuns/{run_id}")
        assert status == 200, run
        assert (run["state"], run["run_type"], run["triggering_user_name"]) == ("success", "manual", "admin")

        browser.open(f"{stack.url}/dags")
        browser.wait_for_dag_list(EXAMPLE_DAGS)
