"""``docker compose up --wait`` on a fresh copy, with no VS Code at all: the same healthy stack.

The README's second way in: a desktop user (UID 1000) runs ``docker compose up --wait`` in a fresh copy
without ``.env``. airflow-init makes the secrets, every service becomes healthy, the UI answers on
127.0.0.1 with the generated admin password, and nothing is published beyond loopback.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from localflow.secrets import rules
from testkit.containers import DesktopUser, Engine, Stack, stack_on_fresh_copy
from testkit.environment import EXAMPLE_DAGS

pytestmark = pytest.mark.containers


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
