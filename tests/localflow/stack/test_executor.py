"""The on-demand LocalExecutor: configured everywhere, no idle workers, runs still succeed.

Real Airflow and a real native stack on PostgreSQL: the scheduler's own child processes show when
workers are forked and retired.
"""

from __future__ import annotations

import psutil
import pytest

from localflow import rest
from localflow.config import settings
from localflow.polling import wait_until
from localflow.stack import executor
from testkit.native_stack import RunningStack, components, running_stack

WORKER_TITLE = "airflow worker -- LocalExecutor"
CONFIGURED = "localflow.stack.executor.LocalExecutor"


def workers(scheduler: psutil.Process) -> set[int]:
    """PIDs of the scheduler's executor workers (the task processes are their children, not its)."""
    found = set()
    for child in scheduler.children():
        try:
            if child.cmdline()[0].startswith(WORKER_TITLE):
                found.add(child.pid)
        except (psutil.NoSuchProcess, IndexError):
            continue
    return found


def run_watching_workers(stack: RunningStack, scheduler: psutil.Process) -> tuple[str, set[int]]:
    """Trigger example_etl and wait for its end; return its state and every worker seen meanwhile."""
    run_id = stack.trigger("example_etl")
    seen: set[int] = set()

    def finished() -> str | None:
        seen.update(workers(scheduler))
        status, body = stack.api.request("GET", f"/api/v2/dags/example_etl/dagRuns/{run_id}")
        return body["state"] if status == 200 and body["state"] in rest.FINISHED_RUN_STATES else None

    with stack.output_on_timeout():
        return wait_until(finished, 180, interval=0.1, what=f"run {run_id} finished"), seen


def wait_for_no_workers(scheduler: psutil.Process, timeout: float) -> None:
    """Wait until the scheduler has no worker left; fail after ``timeout``."""
    wait_until(
        lambda: not workers(scheduler),
        timeout,
        interval=0.2,
        what=lambda: f"no worker left (still alive: {workers(scheduler)})",
    )


def test_airflow_env_configures_it():
    """airflow.env names this class with Airflow's module-path syntax, and Airflow's loader finds it."""
    from airflow.executors.executor_loader import ExecutorLoader

    assert settings.shared_settings()["AIRFLOW__CORE__EXECUTOR"] == CONFIGURED
    # tests/conftest.py gives this process the native environment, airflow.env included.
    executor_class, _ = ExecutorLoader.import_default_executor_cls()
    assert executor_class is executor.LocalExecutor
    # Airflow's checks by class name ("is it a local executor?") still recognise it.
    assert executor_class.__name__ == "LocalExecutor"
    assert executor_class.is_local


def test_start_forks_no_worker():
    """Started, the executor has its queues and no worker; end() with none is clean."""
    instance = executor.LocalExecutor(parallelism=4)
    instance.start()
    try:
        assert instance.workers == {}
        instance.sync()
        assert instance.workers == {}
        assert not psutil.Process().children()
    finally:
        instance.end()


@pytest.mark.stack
def test_workers_come_with_work_and_go_when_idle(tmp_path, postgres):
    """No worker at idle; a run forks them and succeeds; they retire; the next run forks new ones."""
    with running_stack(tmp_path, postgres.create()) as stack:
        scheduler = components(stack)["scheduler"]
        scheduler_log = stack.workspace / ".airflow" / "logs" / "components" / "scheduler.log"
        assert f"Loaded executor: ::{CONFIGURED}" in scheduler_log.read_text()
        assert workers(scheduler) == set(), "workers forked before any work"
        earlier: set[int] = set()
        for run in ("first run", "run after the workers retired"):
            state, seen = run_watching_workers(stack, scheduler)
            assert state == "success", f"{run}:\n{stack.output()}"
            assert seen, f"{run}: no worker seen"
            assert not seen & earlier, f"{run}: retired workers were reused"
            # Retired after IDLE_TIMEOUT without work; the margin covers a slow scheduler loop.
            wait_for_no_workers(scheduler, timeout=executor.IDLE_TIMEOUT + 30)
            earlier |= seen


MARKER_DAG_ID = "chatty"
MARKER_DAG = '''"""Generated DAG chatty: one task that prints a line and returns a value, each with a marker."""

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["test"])
def chatty():
    @task
    def speak() -> str:
        print("printed-marker-61c2")
        return "returned-marker-61c2"

    speak()


chatty()
'''


@pytest.mark.stack
@pytest.mark.parametrize(("setting", "copied"), [(None, False), ("on", True)], ids=["default", "copy-on"])
def test_task_log_lines_are_written_once(tmp_path, setting, copied):
    """A task's printed line and returned value are in its log (the REST API's), not again in scheduler.log.

    ``LOCALFLOW_TASK_LOGS_TO_STDOUT=on`` brings back Airflow's copy of them in the scheduler's output.
    """
    extra = {executor.TASK_LOGS_TO_STDOUT: setting} if setting else {}
    with running_stack(tmp_path, None, **extra) as stack:
        (stack.workspace / "dags" / f"{MARKER_DAG_ID}.py").write_text(MARKER_DAG)
        run_id = stack.trigger(MARKER_DAG_ID)
        assert stack.wait_for_run(MARKER_DAG_ID, run_id) == "success", stack.output()
        task_log = "\n".join(stack.api.task_log(MARKER_DAG_ID, run_id, "speak"))
        scheduler_log = (stack.workspace / ".airflow" / "logs" / "components" / "scheduler.log").read_text()
    for marker in ("printed-marker-61c2", "Returned value was: returned-marker-61c2"):
        assert marker in task_log
        assert (marker in scheduler_log) == copied, f"{marker!r} in scheduler.log: {not copied}"
    assert "Worker starting up" in scheduler_log  # the scheduler's own lines stay
