"""``docker compose up --wait`` on a fresh copy, with no VS Code at all: the same healthy stack.

The README's second way in: a desktop user (UID 1000) runs ``docker compose up --wait`` in a fresh copy
without ``.env``. airflow-init makes the secrets, every service becomes healthy, the UI answers on
127.0.0.1 with the generated admin password, and nothing is published beyond loopback. A DAG file saved
in the bind-mounted workspace is then reparsed through the airflow-dag-watcher service (Airflow's own
rescan would come only every 30 s).
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from localflow.polling import wait_until
from localflow.secrets import rules
from testkit.containers import DesktopUser, Engine, Stack, stack_on_fresh_copy
from testkit.environment import EXAMPLE_DAGS

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
    """A fresh copy started with ``docker compose up --wait``; torn down with ``down -v`` after the module."""
    with stack_on_fresh_copy(engine, desktop_user, base_dir, "compose") as stack:
        stack.up_output = stack.compose("up", "--wait", "--wait-timeout", "300", timeout=900).stderr
        yield stack


def test_up_wait_returns_a_healthy_stack(stack: Stack):
    """When ``up --wait`` returns, every service is healthy and airflow-init exited 0."""
    assert stack.problems() == []


def test_airflow_init_made_private_secrets(stack: Stack):
    """airflow-init created .env with every secret, owned by the user who cloned, mode 0600."""
    assert set(stack.secret_values()) == {secret.name for secret in rules.SECRETS}
    status = (stack.workspace / ".env").stat()
    assert (status.st_uid, stat.S_IMODE(status.st_mode)) == (stack.user.uid, 0o600)


def test_api_reports_every_component_healthy(stack: Stack):
    """Logged in with the generated password, the health endpoint reports every component healthy."""
    status, body = stack.request("GET", "/api/v2/monitor/health")
    assert status == 200, body
    for component in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert body[component]["status"] == "healthy", body


def test_example_dags_are_served(stack: Stack):
    """The example DAGs of the bind-mounted workspace are parsed and served by the API."""
    stack.wait_for_dags(EXAMPLE_DAGS)


def test_wrong_password_is_refused(stack: Stack):
    """Authentication is on: the admin user with another password gets no token."""
    status, _ = stack.api.send("POST", "/auth/token", {"username": "admin", "password": "admin"})
    assert status == 401


def test_ports_are_published_on_loopback_only(stack: Stack):
    """Only the api-server publishes a port, on 127.0.0.1; Postgres is not published at all."""
    assert stack.published_ports() == {"airflow-api-server": [("8080/tcp", "127.0.0.1", str(stack.port))]}


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
    wait_for(lambda: stack.api.task_ids("watched_in_container") == {"first"}, "new file", stack)
    path.write_text(DAG.format(task_id="second"))
    wait_for(lambda: stack.api.task_ids("watched_in_container") == {"second"}, "edit", stack)
    log = stack.compose("logs", "airflow-dag-watcher").stdout
    assert "watched_in_container.py: reparse requested" in log, log[-4000:]
