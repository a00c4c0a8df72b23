"""Attaching to a scheduled task that a Celery worker runs in compose, from the editor's container.

A desktop user sets ``COMPOSE_PROFILES=celery`` and ``LOCALFLOW_DEBUG_TASKS`` in ``.env`` of a fresh copy
and runs ``docker compose up --wait``. A triggered run's task waits for a debugger in the worker's
container, on the compose network only; a debugpy client in the editor's container (``airflow-scheduler``,
where VS Code runs), started from launch.json's "Airflow: attach to a task on a Celery worker", stops at
the breakpoint, continues, and the run succeeds on its first try.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from localflow.debugging import support as debug
from localflow.polling import wait_until
from testkit.containers import DesktopUser, Engine, Stack, stack_on_fresh_copy
from testkit.dap import STOP_TIMEOUT

pytestmark = pytest.mark.containers

DAG_ID, TASK_ID = "example_context", "describe_run"

# Run in the editor's container, as VS Code does on F5: the configuration read from launch.json, a
# breakpoint in the task, a stop, continue. Prints where it stopped and a local's value.
ATTACH = f"""
import json
from pathlib import Path
from testkit.dap import STOP_TIMEOUT, DapClient, launch_configuration, line_of

workspace = Path.cwd()
config = launch_configuration(workspace / ".vscode" / "launch.json", {debug.ATTACH_WORKER!r}, workspace=workspace)
dag_file = workspace / "dags" / "{DAG_ID}.py"
line = line_of(dag_file, "print(label)")
with DapClient(connect=(config["connect"]["host"], config["connect"]["port"])) as client:
    client.start(config, {{dag_file: [line]}})
    stopped = client.wait_event("stopped", STOP_TIMEOUT)
    frame = client.top_frame(stopped["threadId"])
    greeting = client.evaluate("greeting", frame["id"])
    client.request("continue", {{"threadId": stopped["threadId"]}})
    client.wait_event("terminated", STOP_TIMEOUT)
    client.close(terminate_debuggee=False)
print(json.dumps({{"stop": [frame["source"]["path"], frame["line"]], "line": line, "greeting": greeting}}))
"""


@pytest.fixture(scope="module")
def stack(engine: Engine, desktop_user: DesktopUser, base_dir: Path) -> Iterator[Stack]:
    """A fresh copy whose .env turns on the celery profile and makes describe_run wait, up with one worker."""
    with stack_on_fresh_copy(engine, desktop_user, base_dir, "celery-attach") as stack:
        env_file = stack.workspace / ".env"
        env_file.write_text(f"COMPOSE_PROFILES=celery\n{debug.DEBUG_TASKS}={DAG_ID}.{TASK_ID}\n")
        env_file.chmod(0o600)
        desktop_user.give(stack.workspace)
        stack.compose("up", "--wait", "--wait-timeout", "400", timeout=600)
        yield stack


def debug_port_addresses(stack: Stack) -> set[str]:
    """The addresses on which a process in the worker's container listens on port 5678 (/proc/net/tcp)."""
    table = stack.compose("exec", "-T", "airflow-worker", "cat", "/proc/net/tcp", timeout=60).stdout
    addresses = set()
    for row in table.splitlines()[1:]:
        local, state = row.split()[1], row.split()[3]
        address, port = local.split(":")
        if int(port, 16) == debug.DEFAULT_PORT and state == "0A":  # 0A: LISTEN
            addresses.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return addresses


def test_attach_from_the_editor_container_to_a_task_on_the_worker(stack: Stack):
    """The task waits on the worker's 0.0.0.0:5678, published nowhere; the editor's container attaches by
    the service name, stops at the breakpoint with the task's locals, and the run succeeds on try 1."""
    stack.wait_for_dags((DAG_ID,))
    run_id = stack.api.trigger(DAG_ID)
    addresses = wait_until(
        lambda: debug_port_addresses(stack), STOP_TIMEOUT, interval=3, what="the task listening on the worker"
    )

    result = stack.compose(
        "exec", "-T", "--user", str(stack.user.uid), "--workdir", "/workspaces/localflow",
        "-e", "PYTHONDONTWRITEBYTECODE=1", "airflow-scheduler", "python", "-c", ATTACH,
        timeout=2 * STOP_TIMEOUT,
    )  # fmt: skip
    attached = json.loads(result.stdout.strip().splitlines()[-1])
    assert attached["stop"] == [f"/workspaces/localflow/dags/{DAG_ID}.py", attached["line"]]
    assert attached["greeting"] == "'hello'"
    assert addresses == {"0.0.0.0"}
    assert "airflow-worker" not in stack.published_ports()

    assert stack.wait_for_run(DAG_ID, run_id)["state"] == "success"
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}"
    task = stack.api.get(path)
    (worker,) = [
        container["Config"]["Hostname"]
        for container in stack.containers()
        if container["Config"]["Labels"]["com.docker.compose.service"] == "airflow-worker"
    ]
    assert (task["hostname"], task["try_number"]) == (worker, 1)
    # With several workers, the task's hostname (its log line names it too) is the name to connect to.
    stack.compose("exec", "-T", "airflow-scheduler", "getent", "hosts", worker, timeout=60)
