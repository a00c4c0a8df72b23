"""The native stack on Airflow's CeleryExecutor: ``COMPOSE_PROFILES=celery``, real Redis and PostgreSQL.

Each test runs its own ``redis-server`` (``testkit/broker.py``) and its own database, and two workers
unless it says otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from localflow.polling import wait_until
from localflow.stack import workers
from testkit.broker import PrivateRedis, private_redis
from testkit.browser import chromium
from testkit.native_stack import (
    CELERY_DAG_ID,
    RunningStack,
    celery_dag_source,
    components,
    running_stack,
)

pytestmark = pytest.mark.stack
DAG_ID = CELERY_DAG_ID


def write_dag(workspace: Path, tasks: int, seconds: float) -> None:
    """The workspace's dags/ holds the DAG with ``tasks`` mapped tasks of ``seconds`` each."""
    (workspace / "dags").mkdir(exist_ok=True)
    (workspace / "dags" / f"{DAG_ID}.py").write_text(celery_dag_source(tasks, seconds))


@contextmanager
def celery_stack(
    workspace: Path, postgres, redis: PrivateRedis, count: int = 2, **extra: str
) -> Iterator[RunningStack]:
    """A native stack switched to Celery by the one line of ``.env``, with ``count`` workers."""
    settings = {"COMPOSE_PROFILES": "celery", "AIRFLOW__CELERY__BROKER_URL": redis.url}
    settings |= {"LOCALFLOW_CELERY_WORKERS": str(count), **extra}
    with running_stack(workspace, postgres.create(), **settings) as stack:
        yield stack


def task_instances(stack: RunningStack, run_id: str) -> list[dict]:
    """The run's task instances as the REST API shows them."""
    return stack.api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]


def worker_pid(stack: RunningStack, name: str) -> int | None:
    """The PID of the supervised main process of the Celery worker ``name``, None while it has none."""
    process = components(stack).get(name)
    return process.pid if process else None


def check(stack: RunningStack, name: str) -> subprocess.CompletedProcess:
    """The consumption check the supervisor runs on ``name``."""
    env = {**os.environ, "AIRFLOW__CELERY__BROKER_URL": stack.env["AIRFLOW__CELERY__BROKER_URL"]}
    return subprocess.run(
        [sys.executable, "-m", "localflow.stack.workers", "check", workers.nodename(name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_start_line_says_the_workers_start(tmp_path: Path, postgres):
    """``up``'s first line names what starts, the Celery workers among them (their logs are named after them)."""
    with private_redis() as redis, celery_stack(tmp_path, postgres, redis) as stack:
        [line] = [line for line in stack.output().splitlines() if line.startswith("localflow: starting ")]
    assert line == (
        "localflow: starting api-server, scheduler, dag-processor, triggerer, Celery workers worker-1, worker-2 ..."
    )


def test_tasks_fan_out_across_two_workers_and_their_logs_are_readable(tmp_path: Path, postgres):
    """Eight tasks of one run succeed, some on each worker (their hostname in the REST API), and the log
    of a task a worker ran reads through the REST API and in the UI's log view (headless Chromium)."""
    write_dag(tmp_path, tasks=8, seconds=3)
    with private_redis() as redis, celery_stack(tmp_path, postgres, redis) as stack:
        assert "scheduler" in stack.output() or stack.api.is_healthy()
        run_id = stack.trigger(DAG_ID)
        assert stack.wait_for_run(DAG_ID, run_id) == "success"
        instances = task_instances(stack, run_id)
        assert {ti["state"] for ti in instances} == {"success"}
        assert {ti["hostname"] for ti in instances} == {"worker-1", "worker-2"}
        assert {ti["executor"] for ti in instances} <= {"CeleryExecutor", None}
        first = next(ti for ti in instances if ti["map_index"] == 0)
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/nap/logs/{first['try_number']}"
        log = stack.api.get(f"{path}?map_index=0")
        assert "celery-spread-marker 0" in str(log["content"])
        with chromium(tmp_path) as browser:
            browser.open(stack.url)
            browser.log_in("admin", stack.admin_password)
            browser.wait_for("//*[normalize-space()='Welcome']", "the home page after logging in")
            browser.open_task_log(stack.url, DAG_ID, run_id, "nap", map_index=0)
            browser.wait_for_log_line("celery-spread-marker 0")
        assert check(stack, "worker-1").returncode == 0


def test_worker_killed_mid_task_the_task_is_retried_and_the_run_completes(tmp_path: Path, postgres):
    """kill -9 of the worker running a task: the worker is restarted, the task's next try succeeds."""
    write_dag(tmp_path, tasks=1, seconds=25)
    # A task whose worker died is failed once its heartbeat is this old (airflow.env: 60 s); shorter here.
    extra = {"AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20"}
    with private_redis() as redis, celery_stack(tmp_path, postgres, redis, **extra) as stack:
        run_id = stack.trigger(DAG_ID)

        def running_on() -> str | None:
            (ti,) = task_instances(stack, run_id)
            return ti["hostname"] if ti["state"] == "running" and ti["hostname"] else None

        with stack.output_on_timeout():
            name = wait_until(running_on, 120, what="the task running on a worker")
        os.kill(worker_pid(stack, name), signal.SIGKILL)
        assert stack.wait_for_run(DAG_ID, run_id, timeout=300) == "success"
        (ti,) = task_instances(stack, run_id)
        assert ti["try_number"] == 2
        assert f"{name} exited (code -9); restarting" in stack.output()


def test_redis_restart_mid_run_and_a_worker_that_stopped_consuming_is_replaced(tmp_path: Path, postgres):
    """Redis restarted during a run: the run completes. A worker that no longer consumes its queues but
    still answers ``inspect ping`` (apache/airflow#63580) fails the check, and the supervisor replaces it."""
    write_dag(tmp_path, tasks=4, seconds=8)
    extra = {"LOCALFLOW_CELERY_HEALTH_INTERVAL": "5"}
    with private_redis() as redis, celery_stack(tmp_path, postgres, redis, **extra) as stack:
        run_id = stack.trigger(DAG_ID)

        def some_running() -> bool:
            return any(ti["state"] == "running" for ti in task_instances(stack, run_id))

        with stack.output_on_timeout():
            wait_until(some_running, 120, what="a task running")
        redis.restart()
        assert stack.wait_for_run(DAG_ID, run_id, timeout=300) == "success"
        for name in workers.names(2):  # each consumes, having survived or been replaced
            wait_until(lambda name=name: check(stack, name).returncode == 0, 120, what=f"{name} consuming")

        # The trap, made on purpose: worker-1 stops consuming its queues and still answers a ping.
        from celery import Celery

        node = workers.nodename("worker-1")
        app = Celery(set_as_current=False, broker=redis.url)
        try:
            for queue in ("default", workers.own_queue(node)):
                app.control.cancel_consumer(queue, destination=[node], reply=True, timeout=5)
            assert app.control.ping(destination=[node], timeout=5), "worker-1 answers a ping"
        finally:
            app.close()
        before = worker_pid(stack, "worker-1")
        assert before
        result = check(stack, "worker-1")
        assert result.returncode == 1 and "took nothing from" in result.stdout, result.stdout
        with stack.output_on_timeout():
            wait_until(lambda: "worker-1 is unhealthy" in stack.output(), 120, what="worker-1 reported")
            wait_until(
                lambda: worker_pid(stack, "worker-1") not in {None, before}, 120, what="a new worker-1"
            )
        wait_until(lambda: check(stack, "worker-1").returncode == 0, 120, what="the new worker-1 consuming")
        assert stack.wait_for_run(DAG_ID, stack.trigger(DAG_ID), timeout=300) == "success"
