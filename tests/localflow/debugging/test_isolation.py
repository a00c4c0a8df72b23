"""F5 / ``dag-test`` beside the running stack: a debug run's tasks run once, in the debugged process.

The stack's scheduler would otherwise queue the debug run's scheduled task instances to its own executor
(and its triggerer pick up the run's triggers), so tasks ran twice and debug runs failed at random. The
DAGs here are unpaused and the stack runs them too, at the same time as the debug runs.
"""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

from testkit.native_stack import run_localflow, running_stack

# Each task execution appends one line to records.jsonl in the workspace: who ran what, in which process.
RECORD = """
import json, os
from pathlib import Path


def record(context) -> None:
    ti = context["ti"]
    line = {"run_id": ti.run_id, "task_id": ti.task_id, "map_index": ti.map_index, "pid": os.getpid()}
    with (Path(__file__).resolve().parent.parent / "records.jsonl").open("a") as records:
        records.write(json.dumps(line) + "\\n")
"""

DAGS = {
    # Six mapped instances are scheduled at once and run one after another by dag.test(): the scheduler
    # had plenty of time to queue the later ones.
    "isolation_mapped": """
        @dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["test"])
        def isolation_mapped():
            @task
            def numbers() -> list[int]:
                record(get_current_context())
                return list(range(6))

            @task
            def square(number: int) -> int:
                record(get_current_context())
                time.sleep(0.3)
                return number * number

            @task
            def total(squares: list[int]) -> int:
                record(get_current_context())
                return sum(squares)

            total(square.expand(number=numbers()))

        isolation_mapped()
    """,
    # A deferrable sensor: its trigger must run inline in the debug run, not in the stack's triggerer.
    "isolation_deferrable": """
        @dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["test"])
        def isolation_deferrable():
            @task
            def before() -> None:
                record(get_current_context())

            wait = TimeDeltaSensor(task_id="wait", delta=timedelta(seconds=2), deferrable=True)

            @task
            def after() -> None:
                record(get_current_context())

            before() >> wait >> after()

        isolation_deferrable()
    """,
}
HEADER = """
import time
from datetime import timedelta

import pendulum
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import dag, get_current_context, task
"""
DEBUG_RUNS_PER_DAG = 3


def write_dags(workspace: Path) -> None:
    for dag_id, body in DAGS.items():
        source = HEADER + RECORD + textwrap.dedent(body)
        (workspace / "dags" / f"{dag_id}.py").write_text(source)


def task_instances(stack, dag_id: str, run_id: str) -> list[dict]:
    return stack.api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]


def test_debug_runs_and_the_stack_never_run_a_task_twice(tmp_path: Path):
    """Repeated dag-test runs of unpaused DAGs the stack also runs: every task instance ran exactly once."""
    workspace = tmp_path / "workspace"
    with running_stack(workspace, None) as stack:
        write_dags(workspace)
        stack_runs = {dag_id: [stack.trigger(dag_id)] for dag_id in DAGS}  # also unpauses
        for attempt in range(DEBUG_RUNS_PER_DAG):
            for dag_id in DAGS:
                result = run_localflow(stack.env, "dag-test", str(workspace / "dags" / f"{dag_id}.py"))
                assert result.returncode == 0, (
                    f"debug run {attempt + 1} of {dag_id}:\n{result.stdout}{result.stderr}"
                )
                stack_runs[dag_id].append(stack.api.trigger(dag_id))  # the stack keeps running it meanwhile
        for dag_id, run_ids in stack_runs.items():
            for run_id in run_ids:
                assert stack.wait_for_run(dag_id, run_id) == "success", f"{dag_id} {run_id}"

        runs = {
            (dag_id, run["dag_run_id"]): run
            for dag_id in DAGS
            for run in stack.api.get(f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]
        }
        debug_runs = [key for key, run in runs.items() if run["triggered_by"] == "test"]
        assert len(debug_runs) == DEBUG_RUNS_PER_DAG * len(DAGS), "every debug run shows in the UI"
        assert all(runs[key]["state"] == "success" for key in runs), {k: r["state"] for k, r in runs.items()}

        records = [json.loads(line) for line in (workspace / "records.jsonl").read_text().splitlines()]
        executions = Counter((r["run_id"], r["task_id"], r["map_index"]) for r in records)
        assert [key for key, count in executions.items() if count > 1] == [], "tasks that ran twice"
        for dag_id, run_id in runs:
            for ti in task_instances(stack, dag_id, run_id):
                assert (ti["state"], ti["try_number"]) == ("success", 1), f"{dag_id} {run_id} {ti['task_id']}"
        for _, run_id in debug_runs:
            pids = {r["pid"] for r in records if r["run_id"] == run_id}
            assert len(pids) == 1, f"debug run {run_id} ran its tasks in processes {pids}, not only its own"
