"""Run ``python -m localflow up`` for real in a throwaway workspace, and talk to it over the REST API.

Shared by the tests that need a running stack: the native stack test, debugger attach, fault tests.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import psutil

from localflow import rest
from localflow.config import settings
from localflow.config.envfile import parse
from localflow.polling import WaitTimeout, wait_until
from localflow.secrets import rules
from testkit.environment import REPO, free_port

WORKSPACE_FILES = ("dags", "plugins", ".env.example", "airflow_settings.example.yaml")
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


FAILING_DAG = """\"\"\"Generated DAG failing: its middle task raises, with retries left.\"\"\"

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    default_args={{"retries": {retries}, "retry_delay": timedelta(seconds={retry_delay})}},
)
def failing():
    @task
    def extract() -> list[int]:
        return [1, 2]

    @task
    def explode(numbers: list[int]) -> int:
        total = sum(numbers)
        raise ValueError(f"no good: {{total}}")

    @task
    def report(value: int) -> None:
        print(value)

    report(explode(extract()))


failing()
"""
FAILING_LINE = '        raise ValueError(f"no good: {total}")'


CELERY_DAG_ID = "celery_spread"
CELERY_DAG = '''"""Generated DAG celery_spread: mapped tasks that sleep a little, so that workers share them."""

import time
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
    default_args={{"owner": "tests", "retries": 1, "retry_delay": timedelta(seconds=1)}},
)
def celery_spread():
    @task
    def nap(number: int) -> int:
        print(f"celery-spread-marker {{number}}")
        time.sleep({seconds})
        return number

    nap.expand(number=list(range({tasks})))


celery_spread()
'''


def celery_dag_source(tasks: int, seconds: float) -> str:
    """``celery_spread``: ``tasks`` mapped tasks of ``seconds`` each; each logs ``celery-spread-marker N``."""
    return CELERY_DAG.format(tasks=tasks, seconds=seconds)


def failing_dag_source(retries: int, retry_delay: float) -> str:
    """A DAG ``failing`` whose task ``explode`` raises ``ValueError: no good: 3`` at ``FAILING_LINE``."""
    return FAILING_DAG.format(retries=retries, retry_delay=retry_delay)


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
class StackProcess:
    """A stack's top process, its environment and its output file (``up`` here, ``airflow standalone``)."""

    process: subprocess.Popen
    env: dict[str, str]
    output_path: Path

    @property
    def url(self) -> str:
        """Base URL of the api-server."""
        return f"http://127.0.0.1:{self.env['AIRFLOW__API__PORT']}"

    def output(self) -> str:
        """What the stack printed so far."""
        return self.output_path.read_text(errors="replace")


@dataclass
class RunningStack(StackProcess):
    """A native stack started by ``python -m localflow up``; ``api`` is its REST API, logged in as admin."""

    workspace: Path

    @cached_property
    def api(self) -> rest.AirflowClient:
        """The REST client, logged in (on first use) as admin with the password ``up`` wrote to ``.env``."""
        return rest.AirflowClient(self.url, password=lambda: self.admin_password)

    @property
    def admin_password(self) -> str:
        """The admin password that ``up`` generated into the workspace's ``.env``."""
        return parse((self.workspace / ".env").read_text(), ".env")[rules.ADMIN_PASSWORD]

    @contextmanager
    def output_on_timeout(self) -> Iterator[None]:
        """A wait that times out inside the block also shows what ``up`` printed (the components' complaints)."""
        try:
            yield
        except WaitTimeout as error:
            raise WaitTimeout(f"{error}; `up` printed:\n{self.output()}") from None

    def wait_healthy(self, timeout: float = 180) -> None:
        """Wait until every component is healthy; fail with the runner's output otherwise."""

        def healthy() -> bool:
            assert self.process.poll() is None, f"`up` exited early:\n{self.output()}"
            return "Airflow is up" in self.output() and self.api.is_healthy()

        with self.output_on_timeout():
            # Every test with a stack waits here: a short interval, as a look is one file read and one GET.
            wait_until(healthy, timeout, interval=0.2, what="every component healthy")

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """Wait until ``dag_id`` is parsed, unpause and trigger it; return the run id."""
        with self.output_on_timeout():
            self.api.wait_for_dags([dag_id], timeout=120)
        return self.api.trigger(dag_id, conf)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        """Wait until the run has finished; return its final state."""
        with self.output_on_timeout():
            return self.api.wait_for_run(dag_id, run_id, timeout, interval=0.25)["state"]

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
    """A clean environment for ``up``: workspace, database (None: the default SQLite), free ports.

    Marked as the caller's (``settings.CALLER_ENV``): every value in it wins, as a shell's would not.
    """
    env = {
        settings.CALLER_ENV: "1",
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


def run_localflow(
    env: dict[str, str], *args: str, python: str | Path = sys.executable
) -> subprocess.CompletedProcess:
    """``python -m localflow ARGS`` with ``env`` (``python``: another release's venv); output captured."""
    return subprocess.run(
        [str(python), "-m", "localflow", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def start_up(workspace: Path, env: dict[str, str], python: str | Path = sys.executable) -> RunningStack:
    """Start ``python -m localflow up`` (the README's first command, inside the venv, or ``python``'s)."""
    output_path = workspace / "up.out"
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            [str(python), "-m", "localflow", "up"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningStack(process, env, output_path, workspace)


@contextmanager
def running_stack(
    workspace: Path, database_url: str | None, *, python: str | Path = sys.executable, **extra: str
) -> Iterator[RunningStack]:
    """A healthy native stack for the duration of the block (``python``: another release's venv, the
    checkout's code on its path); always stopped afterwards."""
    env = stack_environment(workspace, database_url, **extra)
    if str(python) != sys.executable:
        env["PYTHONPATH"] = str(REPO)
    running = start_up(make_workspace(workspace), env, python)
    try:
        running.wait_healthy()
        yield running
    finally:
        running.stop()


COMPONENT_NAMES = ("api-server", "scheduler", "dag-processor", "triggerer", "dag-watcher")


def components(stack: RunningStack) -> dict[str, psutil.Process]:
    """The supervised components of a running ``up``, by name (Celery workers as ``worker-N``)."""
    found = {}
    for child in psutil.Process(stack.process.pid).children():
        try:
            command = " ".join(child.cmdline())
        except psutil.Error:  # exited (a zombie until the supervisor reaps it)
            continue
        # A worker as Celery retitles it ("[celeryd: worker-1@HOST:MainProcess] ..."), or until it has; not
        # the supervisor's health check of it (`localflow.stack.workers check worker-1@HOST`).
        worker = re.search(r"(?:celeryd: |--celery-hostname )(worker-\d+)@", command)
        if worker:
            found[worker.group(1)] = child
            continue
        for name in COMPONENT_NAMES:
            if (
                name in command
                or name.replace("-", "_") in command
                or (name == "dag-watcher" and "localflow watch" in command)
            ):
                found[name] = child
                break
    return found
