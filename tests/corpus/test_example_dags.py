"""Airflow's own example DAGs, run the ways a user runs them here, and compared with stock Airflow.

A selection of the examples apache-airflow ships (``testkit/corpus.py``) is copied into a throwaway
workspace. Per DAG: the folder parses to the same DAGs, tasks and import errors as under Airflow's stock
settings; ``dag-test`` ends as stock ``dag.test()`` does, task by task; F5 stops in a task and exits as
``dag-test`` does; and a run triggered through the REST API ends as it does in a stack with stock settings.
Each DAG's expected outcome is in ``CORPUS``, so the tests check what a user sees, not only "ours == stock".
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import pytest

from localflow.config import settings
from localflow.debugging.warm_runner import client as warm_runner
from localflow.polling import wait_until
from testkit import corpus, stock
from testkit.dap import STOP_TIMEOUT, DapClient, launch_configuration, line_of
from testkit.environment import REPO
from testkit.native_stack import RunningStack, make_workspace, run_localflow, stack_environment, start_up

LAUNCH_JSON = REPO / ".vscode" / "launch.json"


class Case(NamedTuple):
    """One DAG of the corpus: what it covers, how its run ends, and where F5 stops in it."""

    dag_id: str
    covers: str
    state: str = "success"  # the run's final state, here and under stock
    # task → final state, for every task that does not succeed
    not_succeeded: Mapping[str, str] = MappingProxyType({})
    breakpoint_text: str | None = None  # a line in a Python task body of the file (F5); None: no F5
    task_id: str | None = None  # F5 with "debug one task" (a file of several DAGs); None: "this DAG file"
    variable: str | None = None  # a local read at the stop, and text in its value
    value: str = ""
    stack_state: str | None = None  # the run's final state in the stack, when not ``state``


# The selection: every DAG that runs in the tests. The other DAGs of these files are parsed only
# (example_assets' other consumers and example_time_delta_sensor_async, which waits 30 s; its 2 s copy runs).
CORPUS = [
    Case(
        "tutorial_taskflow_api",
        "TaskFlow",
        breakpoint_text="total_order_value += value",
        variable="order_data_dict",
        value="301.27",
    ),
    Case(
        "tutorial_taskflow_templates",
        "TaskFlow with a templated .sql file from sql/",
        breakpoint_text='print(f"sql: {sql}")',
        variable="sql",
        value="select * from test_data",
        # Stock too: the task takes data_interval_end, which a run triggered without a logical date (as
        # the REST API and the UI's Trigger button do in Airflow 3) lacks. dag.test() sets one.
        stack_state="failed",
    ),
    Case(
        "example_bash_operator",
        "classic BashOperator; a command exiting 99 skips",
        not_succeeded={"this_will_skip": "skipped", "run_this_last": "skipped"},
    ),
    Case(
        "example_xcom",
        "XComs between Bash and Python tasks",
        breakpoint_text="_compare_values(pulled_value_1, value_1)",
        variable="pulled_value_1",
        value="[1, 2, 3]",
    ),
    Case(
        "example_xcom_args",
        "XComArgs, one of two DAGs in a file (F5: debug one task)",
        breakpoint_text='log.info("The knights of Ni say',
        task_id="print_value",
        variable="value",
        value="'Bring me a shrubbery!'",
    ),
    Case("example_xcom_args_with_operators", "XComArgs with classic operators"),
    Case(
        "example_nested_branch_dag",
        "branching, nested",
        not_succeeded={
            task: "skipped" for task in ("false_1", "branch_2", "true_2", "false_2", "join_2", "false_3")
        },
        breakpoint_text="return task_id_to_return",
        variable="task_id_to_return",
        value="'true_1'",
    ),
    Case(
        "example_short_circuit_decorator",
        "short-circuit",
        not_succeeded={task: "skipped" for task in ("false_1", "false_2", "task_4", "task_6")},
        breakpoint_text="return condition",
        variable="condition",
    ),
    Case(
        "example_skip_dag",
        "skips and trigger rules",
        not_succeeded={
            task: "skipped" for task in ("skip_operator_1", "all_success", "final_1", "skip_operator_2")
        },
    ),
    Case(
        "example_task_group_decorator",
        "task groups",
        breakpoint_text='return f"[ Task1 {value} ]"',
        variable="value",
    ),
    Case(
        "example_dynamic_task_mapping",
        "dynamic task mapping (F5: debug one task, after its mapped upstream)",
        breakpoint_text='print(f"Total was {total}")',
        task_id="sum_it",
        variable="total",
        value="9",
    ),
    Case("example_task_mapping_second_order", "mapping over a mapped task"),
    Case("example_task_group_mapping", "a mapped task group"),
    Case(
        "example_setup_teardown_taskflow",
        "setup and teardown",
        breakpoint_text='print(f"doing some work with {cluster_id=}")',
        variable="cluster_id",
        value="'some_cluster_id'",
    ),
    Case(
        corpus.SHORT_SENSOR_DAG,
        "deferrable sensor (TimeDeltaSensor, a 2 s copy of example_time_delta_sensor_async)",
    ),
    Case(
        "example_sensor_decorator",
        "@task.sensor (reschedule mode)",
        breakpoint_text="return PokeReturnValue(is_done=True",
    ),
    Case("asset_produces_1", "asset producer (asset_consumes_1 runs after it in the stack)"),
    Case(
        "example_trigger_controller_dag",
        "TriggerDagRunOperator (its target's run is created; the stack runs it)",
    ),
    Case(
        "example_trigger_target_dag",
        "the trigger's target: reads dag_run.conf",
        breakpoint_text='print(f"Remotely received value',
        variable="dag_run",
        value="DagRun",
    ),
    Case(
        "example_failed_dag",
        "a task that raises (no retries)",
        state="failed",
        not_succeeded={"fail_task": "failed"},
        breakpoint_text='raise RuntimeError("This is a test exception',
    ),
]
CASES = {case.dag_id: case for case in CORPUS}
# In the stack the producer's asset event starts this consumer, and the controller starts its target.
TRIGGERED_BY_OTHERS = {
    "asset_consumes_1": "asset_triggered",
    "example_trigger_target_dag": "operator_triggered",
}


def params(cases):
    """Cases as pytest params, by dag_id."""
    return [pytest.param(case, id=case.dag_id) for case in cases]


class Corpus(NamedTuple):
    """The workspace with the examples copied into dags/, and its environments."""

    workspace: Path
    env: dict[str, str]  # this workspace's settings, as every native Airflow process gets them
    stock_env: dict[str, str]  # the same with Airflow's stock settings
    files: dict[str, Path]  # dag_id → the DAG's file


def examples_workspace(root: Path) -> Path:
    """A fresh clone's workspace whose dags/ holds only Airflow's examples (and their helper folders)."""
    workspace = make_workspace(root)
    shutil.rmtree(workspace / "dags")
    (workspace / "dags").mkdir()
    corpus.copy_examples(workspace / "dags")
    return workspace


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Corpus:
    """The corpus workspace on its own SQLite database, migrated; the warm runner it starts stops at the end."""
    workspace = examples_workspace(tmp_path_factory.mktemp("corpus") / "workspace")
    base = stack_environment(workspace, None)
    for command in (["secrets"], ["airflow", "db", "migrate"]):
        done = run_localflow(base, *command)
        assert done.returncode == 0, done.stdout + done.stderr
    env = settings.native_environment(workspace, base=base)
    stock_env = settings.native_environment(workspace, base={**base, **stock.stock_overrides()})
    files = {dag_id: workspace / "dags" / name for dag_id, name in corpus.parse_folder(env)["files"].items()}
    yield Corpus(workspace, env, stock_env, files)
    warm_runner.stop(env, str(REPO))


def test_parse_results_match_stock(examples: Corpus):
    """Under this workspace's settings the folder has the DAGs, tasks and import errors it has under stock
    settings: every selected DAG, no import error."""
    ours = corpus.parse_folder(examples.env)
    assert ours == corpus.parse_folder(examples.stock_env)
    assert ours["import_errors"] == {}
    assert set(CASES) | set(TRIGGERED_BY_OTHERS) <= set(ours["dags"])
    assert len(set(ours["files"].values())) >= 15


@pytest.fixture(scope="module")
def stock_runs(examples: Corpus) -> dict[str, tuple[int, str, dict[str, str]]]:
    """Stock ``dag.test()`` (``dag-test --stock``, stock settings) of every case: exit code, run state, task states."""
    codes = corpus.stock_dag_tests(examples.stock_env, [(examples.files[d], d) for d in CASES])
    runs = corpus.last_test_runs(examples.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], CASES)
    return {dag_id: (codes[dag_id], *runs[dag_id]) for dag_id in CASES}


def not_succeeded(tasks: dict[str, str]) -> dict[str, str]:
    return {task: state for task, state in tasks.items() if state != "success"}


@pytest.mark.parametrize("case", params(CORPUS))
def test_stock_dag_test_outcome_is_the_expected_one(stock_runs, case: Case):
    """Stock dag.test() itself ends each DAG as the table says: the reference the others are held to."""
    code, state, tasks = stock_runs[case.dag_id]
    expected = (int(case.state != "success"), case.state, dict(case.not_succeeded))
    assert (code, state, not_succeeded(tasks)) == expected


def ctrl_f5(env: dict[str, str], file: Path, dag_id: str) -> subprocess.CompletedProcess:
    """``dag-test FILE --dag-id ID`` as "Run Without Debugging" starts it: forked from the warm runner."""
    command = ["-m", "localflow.debugging.warm_runner", "-m", "localflow", "dag-test", str(file)]
    return subprocess.run(
        [sys.executable, *command, "--dag-id", dag_id],
        cwd=REPO,
        env={**os.environ, **env},  # as VS Code's terminal: F5 and Ctrl+F5 then share one warm runner
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("case", params(CORPUS))
def test_dag_test_matches_stock(examples: Corpus, stock_runs, case: Case):
    """``dag-test`` exits as stock dag.test() does, and its run and every task instance end in the same
    state (which is the expected one)."""
    result = ctrl_f5(examples.env, examples.files[case.dag_id], case.dag_id)
    run_state, tasks = corpus.last_test_runs(
        examples.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], [case.dag_id]
    )[case.dag_id]
    output = (result.stdout + result.stderr)[-3000:]
    assert (result.returncode, run_state, tasks) == stock_runs[case.dag_id], output
    assert f"localflow: {case.dag_id} finished: {case.state}" in result.stdout, output


def f5_stop(client: DapClient, case: Case, dag_file: Path, line: int) -> None:
    """At the breakpoint: the file and line, and the local's value in the Variables view; then continue.

    (Expanding every variable of the frame, ``context`` included, is test_support.py's: here it would cost
    seconds per example for the DAG objects in the files' globals.)
    """
    stopped = client.wait_event("stopped", STOP_TIMEOUT)
    assert stopped["reason"] == "breakpoint", stopped
    frame = client.top_frame(stopped["threadId"])
    assert (Path(frame["source"]["path"]).resolve(), frame["line"]) == (dag_file.resolve(), line)
    if case.variable:
        scopes = client.request("scopes", {"frameId": frame["id"]})["scopes"]
        local_scope = next(scope for scope in scopes if scope["name"] == "Locals")
        local = {item["name"]: item for item in client.variables(local_scope["variablesReference"])}
        assert case.value in local[case.variable]["value"], local[case.variable]
    # Clear the breakpoint, as a user does once done, so the run goes to the end.
    client.request("setBreakpoints", {"source": {"path": str(dag_file)}, "breakpoints": []})
    client.request("continue", {"threadId": stopped["threadId"]})


F5_CASES = [case for case in CORPUS if case.breakpoint_text]


@pytest.mark.parametrize("case", params(F5_CASES))
def test_f5_stops_in_a_task(examples: Corpus, tmp_path: Path, case: Case):
    """F5 ("Airflow: debug this DAG file", or "debug one task" in a file of several DAGs) stops at a
    breakpoint in a task body of the example, with its locals, and exits as dag-test does. A task that raises then stops again where it raised ("Uncaught
    Exceptions", ticked as in VS Code by default)."""
    dag_file = examples.files[case.dag_id]
    config = launch_configuration(
        LAUNCH_JSON,
        "Airflow: debug one task" if case.task_id else "Airflow: debug this DAG file",
        workspace=REPO,
        file=dag_file,
        python=sys.executable,
        inputs={"dagId": case.dag_id, "taskId": case.task_id or ""},
    )
    config["env"] = examples.env
    line = line_of(dag_file, case.breakpoint_text)
    log = tmp_path / "debuggee.log"
    with DapClient(python=sys.executable, log=log) as client:
        client.start(config, {dag_file: [line]})
        f5_stop(client, case, dag_file, line)
        if case.state == "failed":
            raised = client.wait_event("stopped", STOP_TIMEOUT)
            assert raised["reason"] == "exception", raised
            assert client.top_frame(raised["threadId"])["line"] == line
            client.request("continue", {"threadId": raised["threadId"]})
        exited = client.wait_event("exited", STOP_TIMEOUT)
    assert exited["exitCode"] == int(case.state != "success"), log.read_text(errors="replace")[-3000:]


# The stack's runs: every case triggered at once through the REST API, then the runs started by others.
STACK_TIMEOUT = 300


def trigger_all(stack: RunningStack) -> dict[str, str]:
    """Unpause the DAGs others start, trigger every case at once; run ids by dag_id."""
    with stack.output_on_timeout():
        stack.api.wait_for_dags([*CASES, *TRIGGERED_BY_OTHERS], timeout=STACK_TIMEOUT)
    # The api-server builds its Execution API on the first request (seconds): a stock stack's first
    # tasks would give up on it and fail, as they have no retries. Ours does this at start.
    stack.api.warm_up_execution_api()
    for dag_id in TRIGGERED_BY_OTHERS:
        stack.api.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    return {dag_id: stack.api.trigger(dag_id) for dag_id in CASES}


def final_states(stack: RunningStack, run_ids: dict[str, str]) -> dict[str, str]:
    """Each triggered run's final state by dag_id, and of each DAG of ``TRIGGERED_BY_OTHERS`` its first
    run of that kind, as "dag_id (run_type)"."""
    states = {dag_id: stack.wait_for_run(dag_id, run_id, STACK_TIMEOUT) for dag_id, run_id in run_ids.items()}

    def first_run(dag_id: str, run_type: str) -> str | None:
        runs = stack.api.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=id")["dag_runs"]
        kind = [run for run in runs if run["run_type"] == run_type]
        return kind[0]["state"] if kind and kind[0]["state"] in {"success", "failed"} else None

    for dag_id, run_type in TRIGGERED_BY_OTHERS.items():
        with stack.output_on_timeout():
            states[f"{dag_id} ({run_type})"] = wait_until(
                lambda dag_id=dag_id, run_type=run_type: first_run(dag_id, run_type),
                STACK_TIMEOUT,
                interval=1,
                what=f"a finished {run_type} run of {dag_id}",
            )
    return states


@pytest.mark.stack
def test_stack_runs_match_stock(tmp_path: Path, postgres):
    """Every case triggered through the REST API of the native stack ends as the table says, and as in the
    same stack with Airflow's stock settings; the producer's asset starts its consumer and the controller
    its target, in both.

    The two stacks run side by side (each on its own workspace, database and port), which halves the wait.
    """
    stacks = {}
    try:
        for name, overrides in (("ours", {}), ("stock", stock.stock_overrides())):
            workspace = examples_workspace(tmp_path / name)
            stacks[name] = start_up(workspace, stack_environment(workspace, postgres.create(), **overrides))
        for stack in stacks.values():
            stack.wait_healthy()
        run_ids = {name: trigger_all(stack) for name, stack in stacks.items()}
        states = {name: final_states(stack, run_ids[name]) for name, stack in stacks.items()}
    finally:
        for stack in stacks.values():
            stack.process.send_signal(signal.SIGINT)  # both stop at once
        for stack in stacks.values():
            stack.stop()
    expected = {case.dag_id: case.stack_state or case.state for case in CORPUS} | {
        f"{dag_id} ({kind})": "success" for dag_id, kind in TRIGGERED_BY_OTHERS.items()
    }
    assert states["ours"] == states["stock"]
    assert states["ours"] == expected
