"""``docker compose up`` with ``COMPOSE_PROFILES=celery`` in .env and two workers, on a real engine.

A desktop user writes the one line into ``.env`` of a fresh copy and runs ``docker compose up --wait
--scale airflow-worker=2``: Redis and two workers join the stack, a run's tasks spread over both worker
containers, a task's log reads through the REST API, and a worker that stops consuming its queues (while
still answering a ping) is stopped by its own healthcheck and restarted by compose.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from localflow.polling import wait_until
from testkit.containers import DesktopUser, Engine, Stack, stack_on_fresh_copy
from testkit.native_stack import CELERY_DAG_ID, celery_dag_source

pytestmark = pytest.mark.containers

# Run inside a worker container: its worker stops consuming both its queues, and still answers a ping.
STOP_CONSUMING = """
import os
from celery import Celery
app = Celery(broker=os.environ["AIRFLOW__CELERY__BROKER_URL"])
node = "celery@" + os.environ["HOSTNAME"]
for queue in ("default", "localflow.ping." + node):
    app.control.cancel_consumer(queue, destination=[node], reply=True, timeout=5)
print(bool(app.control.ping(destination=[node], timeout=5)))
"""


@pytest.fixture(scope="module")
def stack(engine: Engine, desktop_user: DesktopUser, base_dir: Path) -> Iterator[Stack]:
    """A fresh copy whose .env says ``COMPOSE_PROFILES=celery``, up with two workers."""
    with stack_on_fresh_copy(engine, desktop_user, base_dir, "celery") as stack:
        env_file = stack.workspace / ".env"
        env_file.write_text("COMPOSE_PROFILES=celery\n")
        env_file.chmod(0o600)
        (stack.workspace / "dags" / f"{CELERY_DAG_ID}.py").write_text(celery_dag_source(6, 4))
        desktop_user.give(stack.workspace)
        stack.compose("up", "--wait", "--wait-timeout", "400", "--scale", "airflow-worker=2", timeout=900)
        yield stack


def workers(stack: Stack) -> dict[str, dict]:
    """``docker inspect`` of the worker containers, by container hostname."""
    return {
        container["Config"]["Hostname"]: container
        for container in stack.containers()
        if container["Config"]["Labels"]["com.docker.compose.service"] == "airflow-worker"
    }


def test_up_wait_returns_redis_and_two_healthy_workers(stack: Stack):
    """Every service, Redis and both workers included, is healthy; Redis publishes no port."""
    assert stack.problems() == []
    assert {"redis", "airflow-worker"} <= set(stack.services())
    assert len(workers(stack)) == 2
    assert "redis" not in stack.published_ports()


def test_tasks_spread_over_both_workers_and_logs_read(stack: Stack):
    """A run's tasks succeed on both worker containers; a task's log reads through the REST API."""
    stack.wait_for_dags((CELERY_DAG_ID,))
    run = stack.run_dag(CELERY_DAG_ID)
    assert run["state"] == "success"
    path = f"/api/v2/dags/{CELERY_DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances"
    instances = stack.api.get(path)["task_instances"]
    assert {ti["hostname"] for ti in instances} == set(workers(stack))
    log = stack.api.get(f"{path}/nap/logs/1?map_index=0")
    assert "celery-spread-marker 0" in json.dumps(log)


def test_a_worker_that_stops_consuming_is_restarted(stack: Stack):
    """The worker still answers a ping but takes nothing: its healthcheck stops it, compose restarts it."""
    hostname, container = sorted(workers(stack).items())[0]
    index = container["Config"]["Labels"]["com.docker.compose.container-number"]
    result = stack.compose("exec", "-T", "--index", index, "airflow-worker", "python", "-c", STOP_CONSUMING)
    assert result.stdout.strip().endswith("True"), result.stdout + result.stderr  # the ping still answers
    restarts = container["RestartCount"]

    def restarted() -> bool:
        now = workers(stack).get(hostname)
        return bool(now) and now["RestartCount"] > restarts

    wait_until(restarted, 400, interval=5, what=f"worker {hostname} restarted by its healthcheck")
    stack.wait_healthy(timeout=300)
    assert stack.run_dag(CELERY_DAG_ID)["state"] == "success"
