"""One stack per workspace, and nothing left behind: a second ``up`` refuses, a crash is cleaned up,
stopping ends task processes too (even one that ignores SIGTERM).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from localflow import rest
from localflow.polling import wait_until
from localflow.stack import ownership
from testkit.native_stack import (
    RunningStack,
    make_workspace,
    run_localflow,
    running_stack,
    stack_environment,
    start_up,
)

pytestmark = pytest.mark.stack

STUBBORN_DAG = '''
"""A task that ignores SIGTERM and would run for ten minutes."""
import signal
import time

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def stubborn():
    @task
    def ignore_sigterm() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(600)

    ignore_sigterm()


stubborn()
'''


def stack_id(stack: RunningStack) -> str:
    """The id the running stack recorded in its lock file."""
    return json.loads((stack.workspace / ".airflow" / ownership.LOCK_FILE_NAME).read_text())["id"]


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (zombies are gone for a user: they run nothing)."""
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def ignores_sigterm(process: psutil.Process) -> bool:
    """Whether ``process`` is a task process that has set SIGTERM to be ignored (SigIgn of /proc/PID/status)."""
    try:
        if not " ".join(process.cmdline()).startswith("airflow worker --"):  # the task runner's title
            return False
        status = Path(f"/proc/{process.pid}/status").read_text()
    except (psutil.Error, OSError):
        return False
    ignored = next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(ignored, 16) & 1 << (signal.SIGTERM - 1))


def test_a_second_up_on_the_workspace_refuses_in_one_line(tmp_path: Path):
    """It names the running one; the first stack and its admin password are unaffected."""
    with running_stack(tmp_path / "workspace", None) as first:
        env_before = (first.workspace / ".env").read_bytes()
        second = run_localflow(first.env, "up")
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"localflow: another `up` runs this workspace (PID {first.process.pid}); stop it first "
            f"(Ctrl-C in its terminal, or kill {first.process.pid}). Two stacks on one workspace would "
            "share its database."
        ]
        assert (first.workspace / ".env").read_bytes() == env_before
        api = rest.AirflowClient(first.url, password=first.admin_password)
        api.login()
        assert api.is_healthy()


def test_up_after_a_killed_supervisor_stops_its_leftovers(tmp_path: Path):
    """kill -9 of the supervisor leaves its components running; the next `up` ends them and comes up."""
    workspace = tmp_path / "workspace"
    with running_stack(workspace, None) as first:
        old_id = stack_id(first)
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
        leftovers = ownership.processes_of(old_id)
        assert len(leftovers) >= 5, "the components outlive a killed supervisor"
        second = start_up(workspace, first.env)
        try:
            second.wait_healthy()
            assert f"stopped {len(leftovers)} processes left running by the last stack" in second.output()
            assert not alive(leftovers)
            assert not ownership.processes_of(old_id)
        finally:
            second.stop()


def test_stopping_ends_a_task_that_ignores_sigterm(tmp_path: Path):
    """Ctrl-C while a task runs: when `up` has exited, no process of the stack is left."""
    workspace = make_workspace(tmp_path / "workspace")
    (workspace / "dags" / "stubborn.py").write_text(STUBBORN_DAG)
    with running_stack(workspace, None) as stack:
        ours = stack_id(stack)
        api = rest.AirflowClient(stack.url, password=stack.admin_password)
        api.wait_for_dags(["stubborn"])
        run_id = api.trigger("stubborn")

        def task_running() -> bool:
            instances = api.get(f"/api/v2/dags/stubborn/dagRuns/{run_id}/taskInstances")["task_instances"]
            return [ti["state"] for ti in instances] == ["running"]

        wait_until(task_running, 120, interval=1, what=lambda: f"a running task\n{stack.output()}")
        wait_until(
            lambda: any(ignores_sigterm(process) for process in ownership.processes_of(ours)),
            60,
            interval=0.2,
            what=lambda: f"the task ignoring SIGTERM\n{stack.output()}",
        )
        started = time.monotonic()
        assert stack.stop() == 0
        assert time.monotonic() - started < 45, "stopping is bounded"
        assert not alive(ownership.processes_of(ours)), "a process of the stopped stack still runs"


def processes_of_workspace(workspace: Path) -> list[psutil.Process]:
    """Every live process started for ``workspace`` (they all inherit LOCALFLOW_WORKSPACE)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("LOCALFLOW_WORKSPACE") == str(workspace):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return alive(found)


@pytest.mark.parametrize(
    ("after", "delay", "started_ignoring"),
    [
        ("preparing", 0.0, False),  # the first run's migration
        # a background job of a script (`up &`) inherits SIGINT ignored: Python installs no handler
        ("preparing", 0.0, True),
        ("starting api-server", 0.0, False),  # importing Airflow, forking the components
        ("starting api-server", 1.5, False),  # the supervisor re-executing itself without Airflow
        ("starting api-server", 4.0, False),  # waiting for the components to be healthy
    ],
    ids=["preparing", "preparing-sigint-ignored", "starting", "starting+1.5s", "starting+4s"],
)
def test_ctrl_c_during_the_first_start_stops_everything(
    tmp_path: Path, after: str, delay: float, started_ignoring: bool
):
    """Ctrl-C (SIGINT to the terminal's process group) at any moment of a fresh clone's first `up` is
    never lost across its re-executions: `up` ends within a minute and leaves no process behind."""
    workspace = make_workspace(tmp_path / "workspace")
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if started_ignoring else None
    try:
        stack = start_up(workspace, stack_environment(workspace, None))  # inherits the disposition
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
    try:
        wait_until(lambda: after in stack.output(), 120, interval=0.05, what=f"`up` printing {after!r}")
        time.sleep(delay)
        os.killpg(stack.process.pid, signal.SIGINT)
        wait_until(
            lambda: stack.process.poll() is not None, 60, what=lambda: f"`up` ending\n{stack.output()}"
        )
    finally:
        stack.stop()
    wait_until(lambda: not processes_of_workspace(workspace), 15, interval=0.2, what="no process left")
