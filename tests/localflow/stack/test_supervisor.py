"""The native stack: ``python -m localflow up`` on PostgreSQL, logged in, a DAG run, a clean stop."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest

from localflow.config import settings
from localflow.config.envfile import parse
from localflow.debugging.warm_runner import client as warm_runner
from localflow.polling import wait_until
from localflow.secrets import keyguard
from localflow.secrets.rules import SECRETS
from localflow.stack.supervisor import Component, NativeStack
from testkit.environment import EXAMPLE_DAGS, REPO
from testkit.native_stack import (
    RunningStack,
    container_environment,
    make_workspace,
    run_localflow,
    running_stack,
    stack_environment,
    start_up,
)

pytestmark = pytest.mark.stack
SECRET_NAMES = {secret.name for secret in SECRETS}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_stack_runs_a_dag_and_stops_cleanly(tmp_path, postgres, backend):
    """All components become healthy, the admin logs in, a triggered DAG succeeds, Ctrl-C stops everything.

    SQLite is what a fresh machine gets by default; PostgreSQL is what the containers use.
    """
    with running_stack(tmp_path, postgres.create() if backend == "postgres" else None) as stack:
        assert f"(database: {'postgresql+psycopg2' if backend == 'postgres' else 'sqlite'})" in stack.output()
        output = stack.output()
        assert stack.url in output and "log in as 'admin'" in output
        assert "[warning" not in output  # nothing but its own lines between the user and the UI address
        assert "warm debug runner" not in output  # none was running: none started
        health = stack.api.send("GET", "/api/v2/monitor/health")[1]
        assert {
            health[key]["status"] for key in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        } == {"healthy"}
        assert stack.api.login()  # the admin password of .env is accepted
        run_id = stack.trigger("example_etl")
        assert stack.wait_for_run("example_etl", run_id) == "success"
        assert_connection_encrypted_with_env_key(stack)
        children = psutil.Process(stack.process.pid).children(recursive=True)
        assert len(children) >= 4
        assert stack.stop() == 0
    assert "localflow: stopped." in stack.output()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running: {[process.cmdline() for process in alive]}"
    assert_no_secret_logged(stack.workspace)


def assert_connection_encrypted_with_env_key(stack):
    """A password saved through the API is stored encrypted with the Fernet key of .env (never plaintext)."""
    payload = {"connection_id": "secret_conn", "conn_type": "postgres", "password": "s3cret-pw"}
    status, body = stack.api.request("POST", "/api/v2/connections", payload)
    assert status == 201, body
    env = settings.native_environment(stack.workspace, base=stack.env)
    assert ("connection", "secret_conn") in {
        (kind, ident) for kind, ident, _ in keyguard.encrypted_values(env)
    }
    assert not keyguard.undecryptable(env)


def assert_no_secret_logged(workspace):
    """No generated secret appears in what `up` printed or in any component or task log."""
    values = [
        value
        for name, value in parse((workspace / ".env").read_text(), ".env").items()
        if name in SECRET_NAMES
    ]
    logs = [workspace / "up.out", *(workspace / ".airflow" / "logs").rglob("*")]
    assert len(logs) > 5
    for log in logs:
        if log.is_file():
            text = log.read_text(errors="ignore")
            for value in values:
                assert value not in text, f"a secret is printed in {log}"


class FreshClone(NamedTuple):
    """The stack of a fresh clone's first ``up``, and the warm debug runner its folder-open task started."""

    stack: RunningStack
    runner_before_up: int


def start_warm_runner(env: dict[str, str], workspace: Path) -> str:
    """What VS Code's folder-open task runs (``.vscode/tasks.json``), in the workspace; its one line."""
    command = [sys.executable, "-m", "localflow.debugging.warm_runner", "--start"]
    done = subprocess.run(
        command, env=env, cwd=workspace, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def warm_runner_running(env: dict[str, str], workspace: Path) -> int | None:
    """The PID of the workspace's runner once it has imported Airflow and is up to date, else None."""
    said = start_warm_runner(env, workspace)
    match = re.fullmatch(r"localflow: the warm debug runner is running \(PID (\d+)\)", said)
    return int(match[1]) if match else None


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Iterator[FreshClone]:
    """``up`` on a fresh clone with nothing but Python (SQLite, airflow_settings.yaml from the example),
    opened in VS Code first: its folder-open task started the warm debug runner before .env existed.

    One for the tests below that only look at a running stack: none of them changes it.
    """
    workspace = make_workspace(tmp_path_factory.mktemp("fresh-clone") / "workspace")
    # The workspace's code, as a clone's root folder has it (the tests' copy holds only DAGs and plugins).
    env = stack_environment(workspace, None, PYTHONPATH=str(REPO))
    assert "starting the warm debug runner" in start_warm_runner(env, workspace)
    runner = wait_until(lambda: warm_runner_running(env, workspace), 120, what="the warm runner ready")
    stack = start_up(workspace, env)
    try:
        stack.wait_healthy()
        yield FreshClone(stack, runner)
    finally:
        stack.stop()
        warm_runner.stop(env, str(workspace))


@pytest.fixture(scope="module")
def fresh_clone_stack(fresh_clone: FreshClone) -> RunningStack:
    return fresh_clone.stack


def test_a_warm_runner_started_at_folder_open_follows_the_first_start(fresh_clone: FreshClone):
    """The first ``up`` writes .env, which put the runner out of date: ``up`` starts its replacement, so
    that the first F5 does not wait for one (and with no runner running, ``up`` starts none)."""
    assert "localflow: starting the warm debug runner in the background" in fresh_clone.stack.output()
    env, workspace = fresh_clone.stack.env, fresh_clone.stack.workspace
    replacement = wait_until(lambda: warm_runner_running(env, workspace), 120, what="the replacement ready")
    assert replacement != fresh_clone.runner_before_up


def test_wrong_password_is_refused(fresh_clone_stack: RunningStack):
    """Authentication is on: a wrong password gets no token."""
    stack = fresh_clone_stack
    status, _ = stack.api.send("POST", "/auth/token", {"username": "admin", "password": "wrong"})
    assert status == 401


def test_listens_on_loopback_only(fresh_clone_stack: RunningStack):
    """No component listens on a public interface (api-server, scheduler health, no log servers)."""
    stack = fresh_clone_stack
    pids = {stack.process.pid} | {
        child.pid for child in psutil.Process(stack.process.pid).children(recursive=True)
    }
    listening = [
        connection
        for connection in psutil.net_connections(kind="tcp")
        if connection.status == psutil.CONN_LISTEN and connection.pid in pids
    ]
    assert listening
    assert {connection.laddr.ip for connection in listening} == {"127.0.0.1"}


def test_port_taken_is_one_clear_line_and_nothing_starts(tmp_path, postgres):
    """With the UI port taken, `up` says so in one line and starts no Airflow process."""
    workspace = make_workspace(tmp_path)
    env = stack_environment(workspace, postgres.create())
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["AIRFLOW__API__PORT"])))
        squatter.listen()
        running = start_up(workspace, env)
        code = running.process.wait(timeout=120)
    assert code == 1
    lines = running.output().strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0] and "AIRFLOW__API__PORT" in lines[0]
    assert not (workspace / ".env").exists()


def test_init_prepares_like_the_container(tmp_path, postgres):
    """`init` (compose's airflow-init) makes secrets, the admin password file and a migrated database."""
    workspace = make_workspace(tmp_path)
    result = run_localflow(container_environment(workspace, postgres.create()), "init")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (workspace / ".env").exists()
    assert set(json.loads((workspace / "home" / "passwords.json").read_text())) == {"admin"}


def test_every_example_dag_succeeds_in_the_native_stack_of_a_fresh_clone(fresh_clone_stack: RunningStack):
    """On a fresh clone a run of each example DAG, all triggered at once, succeeds."""
    stack = fresh_clone_stack
    run_ids = {dag_id: stack.trigger(dag_id) for dag_id in EXAMPLE_DAGS}
    states = {dag_id: stack.wait_for_run(dag_id, run_id) for dag_id, run_id in run_ids.items()}
    assert states == dict.fromkeys(EXAMPLE_DAGS, "success")


def test_component_logs_are_rotated_at_their_size(tmp_path):
    """A component's log past ``LOCALFLOW_COMPONENT_LOG_MAX_MB`` moves to NAME.log.1 and starts again empty.

    The api-server logs each request it serves, as it does for the UI's: it writes on into the emptied file.
    """
    max_bytes = 32 * 1024
    with running_stack(tmp_path, None, LOCALFLOW_COMPONENT_LOG_MAX_MB=str(max_bytes / 1024 / 1024)) as stack:
        log = stack.workspace / ".airflow" / "logs" / "components" / "api-server.log"
        rotated = log.with_name("api-server.log.1")

        def served_until_rotated() -> bool:
            for _ in range(20):
                stack.api.send("GET", "/api/v2/version")
            return rotated.exists()

        wait_until(served_until_rotated, 120, interval=0, what=f"{rotated} made")
        first_copy = rotated.read_bytes()
        stack.api.send("GET", "/api/v2/version?after-rotation=1")
        wait_until(
            lambda: b"after-rotation=1" in log.read_bytes(), 30, what="a request logged after rotation"
        )
        assert stack.api.is_healthy()
    assert len(first_copy) > max_bytes and b"request finished" in first_copy
    written_on = log.read_bytes()
    assert b"\0" not in written_on, "the component wrote past the end of the emptied file"
    assert len(written_on) <= max_bytes * 2, "the log was not emptied"  # at most rotated once more


def test_a_component_that_keeps_exiting_is_said_once_then_restarted_quietly(tmp_path, capsys):
    """A restart loop is two lines (the first exit, then that it loops), not one line per restart.

    A real process that exits at once (``python -m localflow`` with an unknown command) in the dag
    watcher's place, supervised by the real loop for 8 s: restarted after 1, 2 and 4 s.
    """
    workspace = make_workspace(tmp_path)
    env = settings.native_environment(workspace, stack_environment(workspace, None))
    stack = NativeStack(env)
    looping = Component("dag-watcher", ["no-such-command"], tmp_path / "looping.log")
    stack.components = [looping]
    looping.start(env)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        stack.supervise_once()
        time.sleep(0.1)
    stack.stop()
    lines = capsys.readouterr().out.splitlines()
    assert looping.restarts >= 3, lines
    assert len(lines) == 2, lines
    assert lines[0].startswith("localflow: dag-watcher exited (code 2); restarting in 1 s"), lines
    assert "its last line: " in lines[0] and "no-such-command" in lines[0], lines
    assert lines[1].startswith("localflow: dag-watcher exited again (code 2), 2 times in a row"), lines
    assert "without a line for each restart" in lines[1], lines
