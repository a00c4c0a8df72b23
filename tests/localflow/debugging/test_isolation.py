"""F5 / ``dag-test`` beside the running stack: a debug run's tasks run once, in the debugged process.

The stack's scheduler would otherwise queue the debug run's scheduled task instances to its own executor
(and its triggerer pick up the run's triggers), so tasks ran twice and debug runs failed at random. The
DAGs here are unpaused and the stack runs them too, at the same time as the debug runs. The dev container
has the same test (``tests/containers/test_reopen_in_container.py``).
"""

from __future__ import annotations

from pathlib import Path

from testkit import debug_runs
from testkit.native_stack import run_localflow, running_stack

DEBUG_RUNS_PER_DAG = 3


def test_debug_runs_and_the_stack_never_run_a_task_twice(tmp_path: Path):
    """Repeated dag-test runs of unpaused DAGs the stack also runs: every task instance ran exactly once."""
    workspace = tmp_path / "workspace"
    with running_stack(workspace, None) as stack:
        debug_runs.write_dags(workspace)
        stack_runs = {dag_id: [stack.trigger(dag_id)] for dag_id in debug_runs.DAGS}  # also unpauses
        for attempt in range(DEBUG_RUNS_PER_DAG):
            for dag_id in debug_runs.DAGS:
                result = run_localflow(stack.env, "dag-test", str(workspace / "dags" / f"{dag_id}.py"))
                assert result.returncode == 0, (
                    f"debug run {attempt + 1} of {dag_id}:\n{result.stdout}{result.stderr}"
                )
                stack_runs[dag_id].append(stack.api.trigger(dag_id))  # the stack keeps running it meanwhile
        for dag_id, run_ids in stack_runs.items():
            for run_id in run_ids:
                assert stack.wait_for_run(dag_id, run_id) == "success", f"{dag_id} {run_id}"
        debug_runs.check_each_ran_once(stack.api, workspace, DEBUG_RUNS_PER_DAG)
