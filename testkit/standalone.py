"""``airflow standalone`` as a user without Docker would start it, on a throwaway workspace's folders.

Airflow's defaults (its own ``AIRFLOW_HOME`` with the ``airflow.cfg`` it generates there, SQLite, the
LocalExecutor) except: the workspace's ``dags/`` and ``plugins/``, no example DAGs (as in localflow's
stacks, so that every configuration of the benchmark parses the same files), and free ports, so that it
does not collide with another stack on this machine. The benchmark uses it as the third column.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from localflow import rest
from localflow.polling import WaitTimeout, wait_until
from testkit.environment import REPO, free_port
from testkit.native_stack import StackProcess

# Airflow's default [core] simple_auth_manager_passwords_file; writing it first sets the admin password.
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


def standalone_environment(workspace: Path, home: Path) -> dict[str, str]:
    """The environment of a shell that runs ``airflow standalone`` for the workspace's DAGs."""
    return {
        # standalone starts each component as `airflow COMMAND`, found on PATH: the venv's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(home)),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONUNBUFFERED": "1",  # its output reaches the file line by line, as it would a terminal
        # In a clone the workspace plugin finds localflow beside plugins/; this workspace has only copies.
        "PYTHONPATH": str(REPO),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(workspace / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(workspace / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",  # the log servers bind all interfaces, not configurable
        **fresh_ports(),
    }


def fresh_ports() -> dict[str, str]:
    """Free ports for the api-server and the two log servers (Airflow's 8080, 8793 and 8794 may be taken)."""
    port = free_port()
    return {
        "AIRFLOW__API__PORT": str(port),
        # Its default is http://localhost:8080/execution/, whatever the port: tasks need the real one.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }


def set_admin_password(home: Path) -> str:
    """Write the password file standalone would generate, so that the benchmark can log in; the password."""
    password = secrets.token_urlsafe(16)
    home.mkdir(parents=True, exist_ok=True)
    (home / PASSWORDS_FILE).write_text(json.dumps({"admin": password}))
    return password


def effective_settings(env: dict[str, str], *options: str) -> dict[str, str]:
    """What Airflow resolves ``section.option`` to with ``env`` (its defaults, airflow.cfg, the variables)."""
    code = (
        "import json, sys; from airflow.configuration import conf; "
        "print(json.dumps({o: conf.get(*o.split('.', 1)) for o in sys.argv[1:]}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@dataclass
class StandaloneStack(StackProcess):
    """A running ``airflow standalone``; ``api`` is its REST API, logged in as admin."""

    password: str

    @cached_property
    def api(self) -> rest.AirflowClient:
        """The REST client, logged in (on first use) as admin."""
        return rest.AirflowClient(self.url, password=self.password)

    def wait_healthy(self, timeout: float = 180) -> None:
        """Wait until ``/api/v2/monitor/health`` reports every component healthy."""

        def healthy() -> bool:
            assert self.process.poll() is None, f"standalone exited early:\n{self.output()}"
            return self.api.is_healthy()

        try:
            wait_until(healthy, timeout, interval=1, what="every component healthy")
        except WaitTimeout as error:
            raise WaitTimeout(f"{error}; standalone printed:\n{self.output()[-4000:]}") from None

    def stop(self, timeout: float = 20) -> int:
        """Ctrl-C in its terminal: SIGINT to its process group; then SIGKILL to the group.

        Measured: after Ctrl-C its scheduler and triggerer were still running a minute later (and so
        standalone, which waits for them), hence the short ``timeout``.
        """
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):  # what of its group outlived it
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode


def start_standalone(env: dict[str, str], password: str, output_path: Path) -> StandaloneStack:
    """Start ``airflow standalone`` in a process group of its own, output to ``output_path``."""
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return StandaloneStack(process, env, output_path, password)
