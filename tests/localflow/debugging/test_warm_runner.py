"""The warm runner (``localflow/debugging/warm_runner/``): F5's run forked from a process that imported Airflow.

Driven as VS Code drives it: the "debug this DAG file" configuration of ``.vscode/launch.json`` over DAP
(``testkit/dap.py``), on a DAG file and a ``plugins/`` helper written by the test. What a user must be able to
count on: the stop is where the breakpoint is, an edited helper is seen on the next F5 without a restart,
changed settings replace the runner, Stop ends the run, a failing run fails, and without a runner (turned
off or unusable) F5 still works.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest

from localflow.debugging.warm_runner import client, protocol, server
from localflow.polling import wait_until
from testkit.dap import STOP_TIMEOUT, DapClient, check_stop, launch_configuration, line_of
from testkit.environment import REPO, airflow_environment, run_airflow

HELPER = '''"""Helper the probe DAG imports from plugins/."""


def value():
    return {value!r}
'''
PROBE_DAG = '''"""A one-task DAG whose task reads a plugins/ helper and fails when it says "fail"."""

import pendulum
import probe_helper
from airflow.sdk import dag, task


# Retries with Airflow's 5-minute delay: F5 must not wait for them.
@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2},
)
def warm_runner_probe():
    @task
    def probe():
        result = probe_helper.value()
        print(f"probe says {result}")
        if result == "fail":
            raise ValueError("the probe failed on purpose")

    probe()


warm_runner_probe()
'''
BREAKPOINT_TEXT = 'print(f"probe says {result}")'


class Probe(NamedTuple):
    """A workspace for F5: the DAG file, its helper, and the environment the debuggee gets."""

    dag_file: Path
    helper: Path
    env: dict[str, str]

    def set_helper(self, value: str) -> None:
        self.helper.write_text(HELPER.format(value=value))


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Probe:
    """A migrated SQLite home, dags/ with the probe DAG, plugins/ for its helper; the runner stops at the end."""
    root = tmp_path_factory.mktemp("warm-runner")
    dags, plugins = root / "dags", root / "plugins"
    dags.mkdir()
    plugins.mkdir()
    env = airflow_environment(root / "home")
    env.update({"AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins)})
    run_airflow(env, "db", "migrate")
    dag_file = dags / "warm_runner_probe.py"
    dag_file.write_text(PROBE_DAG)
    yield Probe(dag_file, plugins / "probe_helper.py", env)
    client.stop(env, str(REPO))


def probe_config(probe: Probe, extra_env: dict[str, str] | None = None) -> dict:
    """launch.json's "debug this DAG file", as VS Code resolves it with the probe DAG open."""
    config = launch_configuration(
        REPO / ".vscode" / "launch.json",
        "Airflow: debug this DAG file",
        workspace=REPO,
        file=probe.dag_file,
        python=sys.executable,
    )
    config["env"] = {**probe.env, **(extra_env or {})}
    return config


def f5(probe: Probe, log: Path, *, expected: str | None, extra_env: dict[str, str] | None = None) -> dict:
    """Press F5 on the probe DAG; with ``expected``, stop at the breakpoint and check ``result``.

    Returns the debuggee's ``exited`` event body, with the PID of the process that ran the DAG ("pid")
    and of the runner it was forked from ("runner", None when it ran directly).
    """
    config = probe_config(probe, extra_env)
    line = line_of(probe.dag_file, BREAKPOINT_TEXT)
    with DapClient(python=sys.executable, log=log) as client:
        client.start(config, {probe.dag_file: [line]} if expected else {})
        pid = runner = None
        if expected:
            stopped = client.wait_event("stopped", STOP_TIMEOUT)
            pid = debuggee_pid(client, stopped)
            runner = runner_of(pid)
            check_stop(client, probe.dag_file, line, "result", repr(expected), stopped=stopped)
        exited = client.wait_event("exited", STOP_TIMEOUT)
    return {**exited, "pid": pid, "runner": runner.pid if runner else None}


def debuggee_pid(client: DapClient, stopped: dict) -> int:
    """The PID of the process stopped at the breakpoint, asked in the Debug Console.

    (The ``process`` event has the PID of the process the launcher started, which hands over.)
    """
    frame = client.top_frame(stopped["threadId"])
    return int(client.evaluate("__import__('os').getpid()", frame["id"]))


def runner_of(pid: int) -> psutil.Process | None:
    """The warm runner a process was forked from: the oldest ancestor running ``--serve`` (the run's
    session keeper in between is a fork of the runner too, with the same command line)."""
    runners = [ancestor for ancestor in psutil.Process(pid).parents() if "--serve" in ancestor.cmdline()]
    return runners[-1] if runners else None


@pytest.mark.parametrize(
    ("argv", "options", "target"),
    [
        (
            [
                "-X",
                "frozen_modules=off",
                "/d/debugpy",
                "--connect",
                "127.0.0.1:1",
                "-m",
                "localflow",
                "dag-test",
            ],
            ["-X", "frozen_modules=off"],
            ["/d/debugpy", "--connect", "127.0.0.1:1", "-m", "localflow", "dag-test"],
        ),
        (["-m", "localflow", "dag-test", "a.py"], [], ["-m", "localflow", "dag-test", "a.py"]),
        (["-Xdev", "-u", "-B", "script.py", "-m"], ["-Xdev", "-u", "-B"], ["script.py", "-m"]),
    ],
)
def test_command_line_is_split_like_python_does(argv, options, target):
    """Interpreter options go to the runner's start; the rest is what each run executes."""
    assert protocol.split_command(argv) == (options, target)


@pytest.mark.parametrize("argv", [["-c", "print(1)"], [], ["-m"], ["-X", "dev"], ["--unknown", "x.py"]])
def test_command_lines_it_cannot_run_are_refused(argv):
    """Refused command lines run directly instead (see test_runs_directly_without_a_runner)."""
    with pytest.raises(protocol.Unavailable):
        protocol.split_command(argv)


def test_later_runs_are_forked_and_see_edited_helpers(probe: Probe, tmp_path):
    """The first F5 starts the runner; the next one reuses it, and sees the helper as edited since."""
    client.stop(probe.env, str(REPO))
    probe.set_helper("first")
    first = f5(probe, tmp_path / "first.log", expected="first")
    assert first["exitCode"] == 0
    assert "starting the warm debug runner" in (tmp_path / "first.log").read_text()

    probe.set_helper("edited since")  # another size too: Python's .pyc check is by mtime and size
    second = f5(probe, tmp_path / "second.log", expected="edited since")
    assert second["exitCode"] == 0
    assert "warm debug runner" not in (tmp_path / "second.log").read_text()
    assert second["runner"] == first["runner"] is not None


def start_ahead(env: dict[str, str]) -> str:
    """``python -m localflow.debugging.warm_runner --start`` in the workspace, as the folder-open task runs it;
    its one line of output."""
    command = [sys.executable, "-m", "localflow.debugging.warm_runner", "--start"]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def runners_serving(socket_path: Path) -> list[psutil.Process]:
    """The runner processes (not their forks) listening at ``socket_path``."""
    serving = [
        process
        for process in psutil.process_iter(["cmdline"])
        if "--serve" in (process.info["cmdline"] or []) and str(socket_path) in process.info["cmdline"]
    ]
    return [process for process in serving if process.parent() not in serving]


def test_a_runner_started_ahead_serves_the_first_f5(probe: Probe, tmp_path):
    """``--start`` (on folder open) returns without waiting for Airflow's imports; the first F5 then runs
    in that runner, neither starting nor replacing one, and stops at the breakpoint."""
    client.stop(probe.env, str(REPO))
    env = {**os.environ, **probe.env}  # what the debuggee gets: the editor's environment and launch's env
    socket_path, _log = protocol.runner_paths(protocol.airflow_environment(env), str(REPO))
    started = time.monotonic()
    assert "starting the warm debug runner in the background" in start_ahead(env)
    assert time.monotonic() - started < 10, "--start does not wait for the imports"
    # Opened again meanwhile (or the dev container's start and the folder-open task together): one runner.
    assert start_ahead(env).startswith("localflow: the warm debug runner is ")  # starting, or running
    [runner] = runners_serving(socket_path)

    probe.set_helper("started ahead")
    log = tmp_path / "first-f5.log"
    exited = f5(probe, log, expected="started ahead")
    assert exited["exitCode"] == 0
    assert "warm debug runner" not in log.read_text()  # neither "starting" nor "restarting"
    assert exited["runner"] == runner.pid
    assert start_ahead(env) == f"localflow: the warm debug runner is running (PID {runner.pid})"
    assert runners_serving(socket_path) == [runner]


def test_stop_stops_the_runner_whatever_interpreter_asks(probe: Probe):
    """``--stop`` run with another interpreter than F5's (the system Python, without Airflow) stops the
    workspace's runner and says so, rather than "was not running" while it idles on."""
    client.stop(probe.env, str(REPO))
    env = {**os.environ, **probe.env}
    socket_path, _log = protocol.runner_paths(protocol.airflow_environment(env), str(REPO))
    start_ahead(env)
    [runner] = runners_serving(socket_path)
    other = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    assert str(other) != sys.executable  # another interpreter: another runner_paths
    command = [str(other), "-m", "localflow.debugging.warm_runner", "--stop"]
    done = subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "localflow: warm debug runner stopped"), done.stderr
    runner.wait(timeout=30)
    assert not socket_path.exists()


def test_runs_are_children_of_the_runner(probe: Probe, tmp_path):
    """The DAG runs in a fork of the runner, not in a process the launcher started."""
    probe.set_helper("forked")
    config = probe_config(probe)
    line = line_of(probe.dag_file, BREAKPOINT_TEXT)
    with DapClient(python=sys.executable, log=tmp_path / "debuggee.log") as client:
        client.start(config, {probe.dag_file: [line]})
        pid = debuggee_pid(client, client.wait_event("stopped", STOP_TIMEOUT))
        runner = runner_of(pid)
        assert runner is not None, psutil.Process(pid).cmdline()
        assert "localflow.debugging.warm_runner" in runner.cmdline()
        # Stop (Shift+F5) ends the run, and the runner stays for the next F5.
        client.close(terminate_debuggee=True)
    wait_until(lambda: not psutil.pid_exists(pid), 10, interval=0.1, what="the run ended by Stop")
    assert runner.is_running()


def after_continue(client: DapClient) -> dict:
    """The event that follows Continue: ``exited``, or another ``stopped`` (which the test then reports)."""
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            event = client.events.get(timeout=0.5)
            if event["event"] in {"stopped", "exited"}:
                return event
    raise AssertionError(f"neither a stop nor the exit within {STOP_TIMEOUT:.0f} s after Continue")


@pytest.mark.parametrize(
    ("uncaught", "runner_env"),
    [(True, {}), (False, {}), (True, {"LOCALFLOW_WARM_RUNNER": "off"})],
    ids=["uncaught-exceptions-ticked", "unticked", "ticked-runner-off"],
)
def test_a_failing_task_stops_where_it_raised(probe: Probe, tmp_path, uncaught: bool, runner_env: dict):
    """A task that raises stops the debugger at the raising line with the task's locals, as an uncaught
    exception would (unless "Uncaught Exceptions" is unticked); after one Continue the run ends at once,
    exit 1, with the error summed up: no second stop at the exit, with the runner or without it. Exit
    status and output come back through the runner."""
    probe.set_helper("fail")
    log = tmp_path / "debuggee.log"
    raise_line = line_of(probe.dag_file, 'raise ValueError("the probe failed on purpose")')
    with DapClient(python=sys.executable, log=log) as client:
        client.start(probe_config(probe, runner_env), {}, exception_filters=["uncaught"] if uncaught else [])
        if uncaught:
            stopped = client.wait_event("stopped", STOP_TIMEOUT)
            assert stopped["reason"] == "exception", stopped
            frame = client.top_frame(stopped["threadId"])
            assert (Path(frame["source"]["path"]), frame["line"]) == (probe.dag_file, raise_line)
            assert client.evaluate("result", frame["id"]) == "'fail'"
            info = client.request("exceptionInfo", {"threadId": stopped["threadId"]})
            assert "the probe failed on purpose" in info["description"], info
            client.request("continue", {"threadId": stopped["threadId"]})
        continued = time.monotonic()
        event = after_continue(client)
        if event["event"] == "stopped":
            frame = client.top_frame(event["body"]["threadId"])
            info = client.request("exceptionInfo", {"threadId": event["body"]["threadId"]})
            raise AssertionError(
                f"stopped again after Continue: {info['description']!r} in {frame['source']}"
            )
        exited = event["body"]
    assert time.monotonic() - continued < 30, "the run ends without waiting for retries"
    assert exited["exitCode"] == 1
    output = log.read_text()
    assert "probe failed: ValueError: the probe failed on purpose" in output
    assert "No tasks to run" not in output
    if runner_env:
        assert "warm debug runner" not in output


def test_changed_settings_replace_the_runner(probe: Probe, tmp_path):
    """A runner imported with other Airflow settings would run stale ones: it is replaced."""
    probe.set_helper("new settings")
    before = f5(probe, tmp_path / "before.log", expected="new settings")
    exited = f5(
        probe,
        tmp_path / "after.log",
        expected="new settings",
        extra_env={"AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "0"},
    )
    assert exited["exitCode"] == 0
    assert "restarting the warm debug runner" in (tmp_path / "after.log").read_text()
    assert exited["runner"] not in {None, before["runner"]}


class DirectCase(NamedTuple):
    """F5 without a runner: how, and what the user is told."""

    env: dict[str, str]
    message: str | None


@pytest.mark.parametrize(
    "case",
    [
        DirectCase({"LOCALFLOW_WARM_RUNNER": "off"}, None),
        DirectCase({"XDG_RUNTIME_DIR": "{file}"}, "running without the warm debug runner"),
    ],
    ids=["turned off", "runtime folder unusable"],
)
def test_runs_directly_without_a_runner(probe: Probe, tmp_path, case: DirectCase):
    """Off, or unusable: F5 still stops at the breakpoint, in a process of its own."""
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    env = {key: value.format(file=not_a_folder) for key, value in case.env.items()}
    probe.set_helper("direct")
    log = tmp_path / "debuggee.log"
    exited = f5(probe, log, expected="direct", extra_env=env)
    assert exited["exitCode"] == 0
    assert exited["runner"] is None
    output = log.read_text()
    if case.message:
        assert case.message in output
    else:
        assert "warm debug runner" not in output


def test_run_without_debugging_and_idle_exit(tmp_path):
    """Ctrl+F5 (no debugpy in the command line) runs in the runner too; an idle runner exits by itself."""
    dags, plugins = tmp_path / "dags", tmp_path / "plugins"
    dags.mkdir()
    plugins.mkdir()
    env = airflow_environment(tmp_path / "home")
    env.update(
        {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            server.IDLE: "2",
        }
    )
    run_airflow(env, "db", "migrate")
    (plugins / "probe_helper.py").write_text(HELPER.format(value="no debugger"))
    dag_file = dags / "warm_runner_probe.py"
    dag_file.write_text(PROBE_DAG)
    socket_path, _log = protocol.runner_paths(protocol.airflow_environment(env), str(REPO))
    command = [
        sys.executable,
        "-m",
        "localflow.debugging.warm_runner",
        "-m",
        "localflow",
        "dag-test",
        str(dag_file),
    ]
    run = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "probe says no debugger" in run.stdout + run.stderr
    assert "starting the warm debug runner" in run.stderr
    wait_until(lambda: not socket_path.exists(), 30, interval=0.2, what="the idle runner's exit")


@pytest.mark.parametrize(
    ("options", "started_with"),
    [
        ([], ["-X", "frozen_modules=off"]),
        (["-X", "frozen_modules=off"], ["-X", "frozen_modules=off"]),
        (["-u", "-X", "frozen_modules=off", "-B"], ["-X", "frozen_modules=off", "-u", "-B"]),
    ],
    ids=["Ctrl+F5", "F5", "F5 with options"],
)
def test_f5_and_ctrl_f5_share_a_runner(options, started_with):
    """debugpy adds -X frozen_modules=off to F5 only; the runner always has it, so both use one."""
    assert protocol.runner_options(options) == started_with
