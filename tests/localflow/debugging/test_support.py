"""Every configuration of ``.vscode/launch.json`` stops at a breakpoint inside task code, driven over DAP.

The client (``testkit/dap.py``) is what VS Code does: it starts ``python -m debugpy.adapter`` (or, for
``attach``, connects to the adapter the task opened), sends the configuration read from launch.json with
its variables resolved, sets a breakpoint in a task body, and then checks what a user would see: the stop
at that file and line, a local variable's value, every scope and variable of the top frame expanded
(``context`` too, apache/airflow#51861) within a bounded time, and a clean exit after continue.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest

from localflow.config.settings import shared_settings
from localflow.debugging import support as debug
from localflow.polling import wait_until
from testkit.broker import private_redis
from testkit.dap import EXPAND_TIMEOUT, STOP_TIMEOUT, DapClient, check_stop, launch_configuration, line_of
from testkit.environment import REPO, free_port
from testkit.native_stack import running_stack

LAUNCH_JSON = REPO / ".vscode" / "launch.json"


class LaunchCase(NamedTuple):
    """One F5: a configuration, where it is pressed, where it must stop and what it must show there."""

    name: str  # configuration in launch.json
    file: str  # the file open in the editor (${file})
    dag_file: str  # DAG file with the breakpoint
    text: str  # text on the breakpoint's line (a task body)
    inputs: dict[str, str]  # answers to the configuration's ${input:...} prompts
    variable: str  # local variable read at the stop
    expected: str  # text in its value


LAUNCH_CASES = [
    LaunchCase(
        "Airflow: debug this DAG file",
        "dags/example_etl.py",
        "dags/example_etl.py",
        "summary = summarize(orders)",
        {},
        "raw",
        "1001,301.27",
    ),
    LaunchCase(
        "Airflow: debug this DAG file",
        "dags/example_context.py",
        "dags/example_context.py",
        "print(label)",
        {},
        "greeting",
        "'hello'",
    ),
    LaunchCase(
        "Airflow: debug this DAG file",
        "dags/example_postgres_query.py",
        "dags/example_postgres_query.py",
        "print(f\"Connected to {server['database']}",
        {},
        "server",
        "'connection'",
    ),
    LaunchCase(
        "Airflow: debug one task",
        "dags/example_etl.py",
        "dags/example_etl.py",
        "summary = summarize(orders)",
        {"dagId": "example_etl", "taskId": "transform"},
        "raw",  # transform's input is extract's XCom: the upstream task ran first
        "1001,301.27",
    ),
    LaunchCase(
        "Airflow: debug this test file",
        "tests/localflow/debugging/test_dagtest.py",
        "dags/example_etl.py",
        "summary = summarize(orders)",
        {},
        "raw",
        "1001,301.27",
    ),
]


@pytest.mark.parametrize("case", LAUNCH_CASES, ids=[f"{case.name} - {case.file}" for case in LAUNCH_CASES])
def test_launch_configuration_stops_in_a_task(migrated_env, tmp_path, case: LaunchCase):
    """F5 stops at the breakpoint in the task body, shows its locals and context, and exits 0."""
    config = launch_configuration(
        LAUNCH_JSON,
        case.name,
        workspace=REPO,
        file=REPO / case.file,
        python=sys.executable,
        inputs=case.inputs,
    )
    if config["module"] != "pytest":  # the test file's conftest sets up its own Airflow home
        config["env"] = migrated_env
    breakpoint_file = REPO / case.dag_file
    line = line_of(breakpoint_file, case.text)
    log = tmp_path / "debuggee.log"
    with DapClient(python=sys.executable, log=log) as client:
        client.start(config, {breakpoint_file: [line]})
        scopes = check_stop(client, breakpoint_file, line, case.variable, case.expected)
        exited = client.wait_event("exited", STOP_TIMEOUT)
    assert exited["exitCode"] == 0, log.read_text(errors="replace")[-4000:]
    if "context" in {item["name"] for item in scopes["Locals"]}:
        context = next(item for item in scopes["Locals"] if item["name"] == "context")
        assert {"'conn'", "'var'", "'macros'", "'ti'"} <= {child["name"] for child in context["children"]}


def _listening(port: int) -> bool:
    return any(
        connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
        for connection in psutil.net_connections(kind="tcp")
    )


@pytest.mark.stack
@pytest.mark.parametrize("executor", ["local", "celery"])
def test_attach_to_a_task_the_scheduler_runs(tmp_path, postgres, executor):
    """With LOCALFLOW_DEBUG_TASKS set, the scheduler's task waits for the debugger, stops at the
    breakpoint, survives a pause longer than the heartbeat timeout and the token's lifetime, and the
    run succeeds on the first try once the user continues. The same when a Celery worker runs the task.

    The heartbeat timeout is the one the workspace runs with (60 s, localflow/config/airflow.env; Airflow's
    default is 300 s). The token's lifetime is shortened from Airflow's 600 s to 30 s so the pause outlasts
    it without a ten-minute test; what keeps the task alive is the same either way: its supervisor keeps
    heartbeating, and each heartbeat response renews the token.
    """
    port = free_port()
    heartbeat_timeout = float(shared_settings()["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"])
    settings = {
        debug.DEBUG_TASKS: "example_context.describe_run",
        debug.DEBUG_PORT: str(port),
        "AIRFLOW__EXECUTION_API__JWT_EXPIRATION_TIME": "30",
    }
    # Past the timeout and the scheduler's next check for tasks without a heartbeat (every 10 s).
    pause = heartbeat_timeout + 15
    with contextlib.ExitStack() as stop:
        if executor == "celery":
            redis = stop.enter_context(private_redis())
            settings |= {"COMPOSE_PROFILES": "celery", "AIRFLOW__CELERY__BROKER_URL": redis.url}
        stack = stop.enter_context(running_stack(tmp_path, postgres.create(), **settings))
        run_id = stack.trigger("example_context")
        with stack.output_on_timeout():
            wait_until(lambda: _listening(port), STOP_TIMEOUT, what=f"a task listening on {port}")
        dag_file = tmp_path / "dags" / "example_context.py"  # the stack's own copy of the workspace
        line = line_of(dag_file, "print(label)")
        config = launch_configuration(LAUNCH_JSON, "Airflow: attach to a scheduled task", workspace=REPO)
        config["connect"]["port"] = port  # a free port instead of 5678, which a developer may be using
        with DapClient(connect=(config["connect"]["host"], port)) as client:
            client.start(config, {dag_file: [line]})
            stopped = client.wait_event("stopped", STOP_TIMEOUT)
            frame = client.top_frame(stopped["threadId"])
            assert (Path(frame["source"]["path"]), frame["line"]) == (dag_file, line)
            scopes = client.expand_all(frame["id"], depth=3, timeout=EXPAND_TIMEOUT)
            assert "context" in {item["name"] for item in scopes["Locals"]}
            assert client.evaluate("greeting", frame["id"]) == "'hello'"
            time.sleep(pause)
            client.request("continue", {"threadId": stopped["threadId"]})
            client.wait_event("terminated", STOP_TIMEOUT)
            client.close(terminate_debuggee=False)
        assert stack.wait_for_run("example_context", run_id) == "success"
        status, task = stack.api.request(
            "GET", f"/api/v2/dags/example_context/dagRuns/{run_id}/taskInstances/describe_run"
        )
        assert status == 200 and task["try_number"] == 1, task  # not killed and retried while paused
        if executor == "celery":
            assert task["hostname"] == "worker-1"  # the native stack's one worker ran it


# LOCALFLOW_DEBUG_TASKS value, dag_id, task_id, selected
SELECTION_CASES = [
    ("", "example_etl", "transform", False),
    ("0", "example_etl", "transform", False),
    ("1", "example_etl", "transform", True),
    ("*", "example_etl", "transform", True),
    ("example_etl", "example_etl", "transform", True),
    ("example_etl.transform", "example_etl", "transform", True),
    ("example_etl.transform", "example_etl", "load", False),
    ("example_context, example_etl.load", "example_etl", "load", True),
    ("example_*.extract", "example_etl", "extract", True),
    ("example_context", "example_etl", "extract", False),
]


@pytest.mark.parametrize(("spec", "dag_id", "task_id", "selected"), SELECTION_CASES)
def test_debug_tasks_selection(spec, dag_id, task_id, selected):
    """LOCALFLOW_DEBUG_TASKS selects tasks by dag_id or dag_id.task_id patterns."""
    assert debug.task_selected(spec, dag_id, task_id) is selected


CONTEXT_PROBE = """
import os
os.environ["AIRFLOW_VAR___LEN__"] = "looked up"
os.environ["AIRFLOW_CONN___ITER__"] = "postgresql://user@host/db"
os.environ["AIRFLOW_VAR_GREETING"] = "hello"
from airflow.sdk.execution_time.context import ConnectionAccessor, VariableAccessor
from localflow.debugging import support as debug

def probe():
    found = []
    for accessor, name in ((VariableAccessor(False), "__len__"), (ConnectionAccessor(), "__iter__")):
        try:
            getattr(accessor, name)
            found.append("looked up")
        except AttributeError:
            found.append("no lookup")
    return found

print(probe())
debug.make_context_inspectable()
print(probe())
print(VariableAccessor(False).greeting)
"""


def test_context_probes_make_no_lookups():
    """A debugger's protocol probes on context["var"] / ["conn"] are lookups in Airflow 3.3 (#51861);
    after make_context_inspectable they are not, and ordinary access still is."""
    result = subprocess.run(
        [sys.executable, "-c", CONTEXT_PROBE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    before, after, greeting = result.stdout.strip().splitlines()[-3:]
    assert before == "['looked up', 'looked up']"  # fails once Airflow fixes #51861: drop the patch then
    assert after == "['no lookup', 'no lookup']"
    assert greeting == "hello"


# LOCALFLOW_DEBUG_HOST (None: unset), the address a waiting task listens on
HOST_CASES = [
    (None, "127.0.0.1"),
    ("", "127.0.0.1"),
    ("0.0.0.0", "0.0.0.0"),  # what compose sets on airflow-worker
    (" 0.0.0.0 ", "0.0.0.0"),
]


@pytest.mark.parametrize(("setting", "host"), HOST_CASES)
def test_debug_host_setting(monkeypatch, setting, host):
    """Loopback unless LOCALFLOW_DEBUG_HOST says otherwise (only compose's worker does)."""
    monkeypatch.delenv(debug.DEBUG_HOST_SETTING, raising=False)
    if setting is not None:
        monkeypatch.setenv(debug.DEBUG_HOST_SETTING, setting)
    assert debug.debug_host() == host


WAIT_IN_A_PROCESS = """
import logging, sys
logging.basicConfig(stream=sys.stdout, format="%(message)s")
from localflow.debugging import support
support.wait_for_debugger("example_etl", "transform", int(sys.argv[1]), 120)
"""


def _listen_addresses(port: int) -> set[str]:
    return {
        connection.laddr.ip
        for connection in psutil.net_connections(kind="tcp")
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
    }


# LOCALFLOW_DEBUG_HOST (None: unset), where the port is open, the configuration the log line names
LISTEN_CASES = [
    (None, "127.0.0.1", "Airflow: attach to a scheduled task"),
    # Another loopback address stands in for compose's 0.0.0.0: a test opens nothing off this machine.
    ("127.0.0.2", "127.0.0.2", "Airflow: attach to a task on a Celery worker"),
]


@pytest.mark.parametrize(("setting", "address", "configuration"), LISTEN_CASES)
def test_a_waiting_task_listens_where_the_setting_says(tmp_path, setting, address, configuration):
    """The debug port opens on the address of LOCALFLOW_DEBUG_HOST, and on that one only; the log line
    says where and which configuration attaches (off loopback, with the hostname to connect to)."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != debug.DEBUG_HOST_SETTING}
    if setting is not None:
        env[debug.DEBUG_HOST_SETTING] = setting
    output = tmp_path / "output"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", WAIT_IN_A_PROCESS, str(port)],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the debugpy adapter it starts goes with it
        )
    try:
        wait_until(lambda: _listen_addresses(port), 60, what=f"a listener on port {port}")
        assert _listen_addresses(port) == {address}
        wait_until(lambda: "waits up to" in output.read_text(), 30, what="the waiting task's log line")
        line = output.read_text()
        assert "frozen modules" not in line, line  # debugpy's, true only of the standard library's
        assert f"on {address}:{port}" in line and f'"{configuration}"' in line, line
        assert ("of host" in line) is (setting is not None), line
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


# LOCALFLOW_WARM_RUNNER, and the F5s pressed: the first one starts the warm runner, the next is forked from
# it; with the runner off each F5 runs directly
F5_RUNS = [("on", ("first", "warm")), ("off", ("direct",))]


@pytest.mark.parametrize("migrated_env", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("warm_runner", "runs"), F5_RUNS, ids=[f"warm-runner-{case[0]}" for case in F5_RUNS])
def test_f5_prints_no_warning(migrated_env, tmp_path, warm_runner: str, runs: tuple[str, ...]):
    """F5 on example_etl runs to the end with no warning in its terminal or the Debug Console.

    A warning there (runpy's about localflow.__main__, pathspec's about Airflow's ignore files) reads as
    something broken to a user.
    """
    config = launch_configuration(
        LAUNCH_JSON, "Airflow: debug this DAG file", workspace=REPO, file=REPO / "dags/example_etl.py"
    )
    # What VS Code gives F5: the test's home and database, not airflow.env, which dag-test applies itself.
    config["env"] = {name: value for name, value in migrated_env.items() if name not in shared_settings()}
    config["env"]["LOCALFLOW_WARM_RUNNER"] = warm_runner
    assert "PYTHONWARNINGS" not in config["env"]
    for run in runs:
        log = tmp_path / f"debuggee-{run}.log"
        with DapClient(python=sys.executable, log=log) as client:
            client.start(config, {})
            exited = client.wait_event("exited", STOP_TIMEOUT)
        terminal = log.read_text(errors="replace")
        console = "".join(
            event["body"].get("output", "") for event in client.seen_events if event.get("event") == "output"
        )
        assert exited["exitCode"] == 0, terminal[-4000:]
        assert "example_etl finished: success" in terminal, terminal[-4000:]
        warned = [
            line
            for line in (terminal + console).replace(str(tmp_path), "").splitlines()
            if "warning" in line.lower()
        ]
        assert warned == [], f"{run} F5:\n" + "\n".join(warned)
