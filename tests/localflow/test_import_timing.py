"""A plugin or DAG file slow to import is named, with its time, once: in F5's terminal (dag-test) and in
the output of ``up``. A plugin that sleeps at import, with ``LOCALFLOW_SLOW_IMPORT`` lowered to keep the
tests quick."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from localflow.debugging.warm_runner import client
from localflow.import_timing import SLOW_IMPORT
from localflow.polling import wait_until
from testkit.dap import STOP_TIMEOUT, DapClient, check_stop, launch_configuration, line_of
from testkit.environment import REPO, airflow_environment, run_airflow
from testkit.native_stack import make_workspace, run_localflow, running_stack, stack_environment

SLEEP = 1.5
LIMIT = "1"
SLOW_PLUGIN = f"import time\n\ntime.sleep({SLEEP})  # a slow import, say of a large library\n"
SLOW_DAG = f'''"""Generated DAG slow_to_parse: its file sleeps at import."""

import time

import pendulum
from airflow.sdk import dag, task

time.sleep({SLEEP})


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"))
def slow_to_parse():
    @task
    def step() -> int:
        return 1

    step()


slow_to_parse()
'''
NAMED = re.compile(r"^localflow: (\S+) took ([\d.]+) s to import", re.MULTILINE)


def named(output: str) -> dict[str, float]:
    """The files the output names as slow to import, with their seconds."""
    return {name: float(seconds) for name, seconds in NAMED.findall(output)}


def slow_workspace(root: Path) -> Path:
    """A fresh clone's workspace with ``plugins/slow_plugin.py`` and ``dags/slow_to_parse.py``."""
    workspace = make_workspace(root)
    (workspace / "plugins" / "slow_plugin.py").write_text(SLOW_PLUGIN)
    (workspace / "dags" / "slow_to_parse.py").write_text(SLOW_DAG)
    return workspace


def test_dag_test_names_the_slow_plugin_and_dag_file_before_the_run(tmp_path):
    """dag-test (what F5 runs) names the plugin (imported twice here, by Airflow's two plugin managers)
    and the DAG file, each once, before the first task, and the run succeeds; nothing else is named."""
    workspace = slow_workspace(tmp_path / "workspace")
    env = stack_environment(workspace, None, **{SLOW_IMPORT: LIMIT})
    result = run_localflow(env, "dag-test", str(workspace / "dags" / "slow_to_parse.py"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    times = named(output)
    assert set(times) == {"plugins/slow_plugin.py", "dags/slow_to_parse.py"}, output[-3000:]
    assert times["plugins/slow_plugin.py"] >= 2 * SLEEP and "(2 times here" in output
    assert times["dags/slow_to_parse.py"] >= SLEEP
    assert output.index("plugins/slow_plugin.py took") < output.index("[DAG TEST] starting task_id=")
    assert "more than LOCALFLOW_SLOW_IMPORT=1 s" in output


@pytest.mark.stack
def test_up_names_the_slow_plugin_once(tmp_path):
    """``up`` names the plugin once in its output, with its time, and the stack runs a DAG as usual."""
    with running_stack(slow_workspace(tmp_path), None, **{SLOW_IMPORT: LIMIT}) as stack:
        wait_until(lambda: named(stack.output()), 60, what="a slow import named in the output of `up`")
        run_id = stack.trigger("example_etl")
        assert stack.wait_for_run("example_etl", run_id) == "success"
    times = named(stack.output())
    assert list(times) == ["plugins/slow_plugin.py"], stack.output()
    assert times["plugins/slow_plugin.py"] >= SLEEP
    assert stack.output().count("slow_plugin.py took") == 1


BREAKPOINT_DAG = '''"""Generated DAG quick: one task with a line to stop at."""

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"))
def quick():
    @task
    def step() -> int:
        answer = 42
        return answer

    step()


quick()
'''


def test_f5_names_the_slow_plugin_in_its_terminal(tmp_path):
    """F5 ("Airflow: debug this DAG file" over DAP, forked from the warm runner) names the slow plugin once
    in the debuggee's output, stops at the breakpoint in the task, and the run succeeds."""
    dags, plugins = tmp_path / "dags", tmp_path / "plugins"
    dags.mkdir()
    plugins.mkdir()
    (plugins / "slow_plugin.py").write_text(SLOW_PLUGIN)
    dag_file = dags / "quick.py"
    dag_file.write_text(BREAKPOINT_DAG)
    env = airflow_environment(tmp_path / "home")
    env.update(
        {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            SLOW_IMPORT: LIMIT,
        }
    )
    run_airflow(env, "db", "migrate")
    config = launch_configuration(
        REPO / ".vscode" / "launch.json",
        "Airflow: debug this DAG file",
        workspace=REPO,
        file=dag_file,
        python=sys.executable,
    )
    config["env"] = env
    line = line_of(dag_file, "return answer")
    log = tmp_path / "debuggee.log"
    try:
        with DapClient(python=sys.executable, log=log) as dap:
            dap.start(config, {dag_file: [line]})
            check_stop(dap, dag_file, line, "answer", "42")
            exited = dap.wait_event("exited", STOP_TIMEOUT)
    finally:
        client.stop(env, str(REPO))
    output = log.read_text()
    assert exited["exitCode"] == 0, output[-3000:]
    assert list(named(output)) == ["plugins/slow_plugin.py"], output[-3000:]
    assert output.count("slow_plugin.py took") == 1
