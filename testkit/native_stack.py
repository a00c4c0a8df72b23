"""Run ``python -m localflow up`` for real in a throwaway workspace, and talk to it over the REST API.

Shared by the tests that need a running stack: the native stack test, debugger attach, fault tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from localflow import rest
from localflow.envfile import parse
from localflow.secrets import rules
from testkit.environment import REPO, free_port

WORKSPACE_FILES = ("dags", "plugins", ".env.example")
ONE_TASK_DAG = '''"""Generated DAG {dag_id}."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
{imports}

@dag(dag_id="{dag_id}", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["generated"])
def build():
    @task(task_id={task_id})
    def step() -> int:
        return 1

    step()


build()
'''


def dag_source(dag_id: str, task_id: str, imports: str = "") -> str:
    """A one-task DAG file (what the watcher tests and the benchmark save); ``task_id`` is an expression."""
    return ONE_TASK_DAG.format(dag_id=dag_id, task_id=task_id, imports=imports)


def make_workspace(root: Path) -> Path:
    """A fresh clone's view of the workspace: DAGs, plugins and the .env template, nothing else."""
    for name in WORKSPACE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source, root / name, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True
            )
        else:
            shutil.copy2(source, root / name)
    return root


@dataclass
class RunningStack:
    """A native stack started by ``python -m localflow up``."""

    process: subprocess.Popen
    workspace: Path
    env: dict[str, str]
    output_path: Path

    @property
    def url(self) -> str:
        """Base URL of the api-server."""
        return f"http://127.0.0.1:{self.env['AIRFLOW__API__PORT']}"

    def output(self) -> str:
        """What ``up`` printed so far."""
        return self.output_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 180) -> None:
        """Wait until every component is healthy; fail with the runner's output otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"`up` exited early:\n{self.output()}"
            if "Airflow is up" in self.output() and rest.AirflowClient(self.url).is_healthy():
                return
            time.sleep(1)
        raise AssertionError(f"stack not healthy after {timeout} s:\n{self.output()}")

    @property
    def admin_password(self) -> str:
        """The admin password that ``up`` generated into the workspace's ``.env``."""
        return parse((self.workspace / ".env").read_text(), ".env")[rules.ADMIN_PASSWORD]

    def token(self, password: str | None = None) -> str:
        """Log in as admin with the generated password; return the access token."""
        password = password or self.admin_password
        status, body = self.request(
            "POST", "/auth/token", {"username": "admin", "password": password}, token=None
        )
        assert status == 201, (status, body)
        return body["access_token"]

    def request(
        self, method: str, path: str, payload: dict | None = None, token: str | None = ""
    ) -> tuple[int, dict]:
        """One REST call; returns (status, JSON body)."""
        if token == "":
            token = self.token()
        return rest.request_json(self.url + path, method, payload, token)

    def wait_for_dag(self, dag_id: str, token: str, timeout: float = 120) -> None:
        """Wait until the dag-processor has serialized ``dag_id``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.request("GET", f"/api/v2/dags/{dag_id}", token=token)[0] == 200:
                return
            time.sleep(1)
        raise AssertionError(f"{dag_id} never appeared:\n{self.output()}")

    def trigger(self, dag_id: str, token: str, conf: dict | None = None) -> str:
        """Unpause and trigger ``dag_id``; return the run id."""
        self.wait_for_dag(dag_id, token)
        status, body = self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False}, token=token)
        assert status == 200, body
        status, body = self.request(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}}, token=token
        )
        assert status == 200, body
        return body["dag_run_id"]

    def wait_for_run(self, dag_id: str, run_id: str, token: str, timeout: float = 180) -> str:
        """Poll the run until it finishes; return its final state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", token=token)
            if status == 200 and body["state"] in {"success", "failed"}:
                return body["state"]
            time.sleep(1)
        raise AssertionError(f"run {run_id} unfinished after {timeout} s:\n{self.output()}")

    def stop(self, timeout: float = 60) -> int:
        """Ctrl-C, as a user would; return the runner's exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def stack_environment(workspace: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    """A clean environment for ``up``: workspace, database (None: the default SQLite), free ports."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(workspace)),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "LOCALFLOW_WORKSPACE": str(workspace),
        "AIRFLOW__API__PORT": str(free_port()),
        **extra,
    }
    if database_url:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url
    return env


def container_environment(workspace: Path, database_url: str) -> dict[str, str]:
    """The environment of compose's airflow-init, with the workspace and database of a test."""
    home = workspace / "home"
    env = stack_environment(workspace, database_url, LOCALFLOW_CONTAINER="1", AIRFLOW_HOME=str(home))
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(home / "passwords.json")
    return env


def run_localflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``python -m localflow ARGS`` with ``env``; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "localflow", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def start_up(workspace: Path, env: dict[str, str]) -> RunningStack:
    """Start ``python -m localflow up`` (the README's first command, inside the venv)."""
    output_path = workspace / "up.out"
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "localflow", "up"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningStack(process, workspace, env, output_path)


@contextmanager
def running_stack(workspace: Path, database_url: str | None, **extra: str) -> Iterator[RunningStack]:
    """A healthy native stack for the duration of the block; always stopped afterwards."""
    running = start_up(make_workspace(workspace), stack_environment(workspace, database_url, **extra))
    try:
        running.wait_healthy()
        yield running
    finally:
        running.stop()


COMPONENT_NAMES = ("api-server", "scheduler", "dag-processor", "triggerer", "dag-watcher")


def components(stack: RunningStack) -> dict[str, psutil.Process]:
    """The supervised components of a running ``up``, by name."""
    found = {}
    for child in psutil.Process(stack.process.pid).children():
        command = " ".join(child.cmdline())
        for name in COMPONENT_NAMES:
            if (
                name in command
                or name.replace("-", "_") in command
                or (name == "dag-watcher" and "localflow watch" in command)
            ):
                found[name] = child
                break
    return found
