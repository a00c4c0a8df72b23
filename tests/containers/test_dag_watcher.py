"""The dag watcher in compose: a DAG file saved in the bind-mounted workspace is reparsed on request.

A fresh copy is started with ``docker compose up --wait`` (the airflow-dag-watcher service must become
healthy: it reached the api-server). A new DAG file and an edit then reach the REST API, and the
watcher's log shows it asked for them (Airflow's own rescan would come only every 30 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localflow.polling import wait_until
from testkit.containers import DesktopUser, Engine, Stack, stack_on_fresh_copy

pytestmark = pytest.mark.containers

DAG = """from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="watched_in_container", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"))
def build():
    @task(task_id="{task_id}")
    def step() -> int:
        return 1

    step()


build()
"""


@pytest.fixture(scope="module")
def stack(engine: Engine, desktop_user: DesktopUser, base_dir: Path) -> Iterator[Stack]:
    """A fresh copy started with ``docker compose up --wait``; ``down -v`` after the module."""
    with stack_on_fresh_copy(engine, desktop_user, base_dir, "watcher") as stack:
        stack.up_output = stack.compose("up", "--wait", "--wait-timeout", "300", timeout=900).stderr
        yield stack


def tasks(stack: Stack) -> set[str]:
    """Task ids of the watched DAG, empty while it is unknown."""
    status, body = stack.request("GET", "/api/v2/dags/watched_in_container/tasks")
    return {task["task_id"] for task in body.get("tasks", [])} if status == 200 else set()


def wait_for(condition, what: str, stack: Stack, patience: float = 120) -> None:
    """Wait until ``condition()`` holds; fail with the watcher's log otherwise."""

    def with_log() -> str:
        log = stack.compose("logs", "airflow-dag-watcher", check=False).stdout
        return f"airflow-dag-watcher log:\n{log[-4000:]}\n{what} visible"

    wait_until(condition, patience, what=with_log)


def test_watcher_service_is_healthy(stack: Stack):
    """The airflow-dag-watcher service runs and its healthcheck (a recent heartbeat) passes."""
    row = stack.services()["airflow-dag-watcher"]
    assert (row["State"], row.get("Health")) == ("running", "healthy"), row


def test_saved_files_are_reparsed_through_the_watcher(stack: Stack):
    """A new DAG file and an edit of it, saved on the host side of the bind mount, reach the API."""
    path = stack.workspace / "dags" / "watched_in_container.py"
    path.write_text(DAG.format(task_id="first"))
    stack.user.give(path)
    wait_for(lambda: tasks(stack) == {"first"}, "new file", stack)
    path.write_text(DAG.format(task_id="second"))
    wait_for(lambda: tasks(stack) == {"second"}, "edit", stack)
    log = stack.compose("logs", "airflow-dag-watcher").stdout
    assert "watched_in_container.py: reparse requested" in log, log[-4000:]
