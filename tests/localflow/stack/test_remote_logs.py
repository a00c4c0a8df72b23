"""Remote task logs on S3, the user's way: a fresh clone whose ``.env`` sets ``LOCALFLOW_REMOTE_LOGS``.

``python3 -m localflow up`` (the system Python, as the README says) builds ``.venv`` with the extra lock,
starts the local S3 server with the stack, and a task's log then lives in the bucket: boto3 finds it there,
the file Airflow keeps locally is empty, and the UI's log view and the REST API show the printed line read
from ``s3://``, after a restart of the stack too. The bucket the switch names is made at start. docs/logs.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from localflow.config import settings
from localflow.polling import WaitTimeout, wait_until
from testkit.browser import chromium
from testkit.containers import fresh_copy
from testkit.environment import free_port
from testkit.native_stack import RunningStack

pytestmark = pytest.mark.stack

BUCKET, FOLDER = "localflow-logs", "logs"
DAG_ID, TASK_ID = "remote_log_probe", "speak"
PROBE_DAG = '''"""Prints one line, which must reach the bucket."""

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["probe"])
def remote_log_probe():
    @task
    def speak():
        print("{line}")

    speak()


remote_log_probe()
'''
# What the fresh clone's venv runs to list the bucket: boto3 comes with the extra lock, not the test venv.
LIST_BUCKET = """
import json, sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="any", aws_secret_access_key="any")
objects = s3.list_objects_v2(Bucket=sys.argv[2]).get("Contents", [])
print(json.dumps({o["Key"]: s3.get_object(Bucket=sys.argv[2], Key=o["Key"])["Body"].read().decode()
                  for o in objects}))
"""


def user_shell() -> dict[str, str]:
    """A user's shell: this one's (PyPI's certificates, uv's cache) without the test session's Airflow."""
    session = set(settings.shared_settings()) | {"VIRTUAL_ENV", "PYTHONPATH"}
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW", "LOCALFLOW_", "_AIRFLOW")) and name not in session
    }


def system_python() -> str:
    """The Python a user runs the README's command with: the base interpreter of the test venv."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")


def start_up(workspace: Path, api_port: int, output_path: Path) -> RunningStack:
    """``python3 -m localflow up`` in ``workspace`` as a user types it, with the plain Python."""
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            [system_python(), "-m", "localflow", "up"],
            cwd=workspace,
            env=user_shell(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningStack(process, {"AIRFLOW__API__PORT": str(api_port)}, output_path, workspace)


def logged_events(stack: RunningStack, run_id: str) -> list[str]:
    """The events of the task's log as the REST API serves it (the source's s3:// key among them)."""
    status, log = stack.api.request(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/logs/1"
    )
    assert status == 200, log
    return [entry.get("event") for entry in log["content"]]


def test_task_log_goes_to_the_bucket_and_back(tmp_path):
    """The printed line is in the bucket, not in the local file, and the UI and the API show it from s3://."""
    workspace, artifacts = fresh_copy(tmp_path / "workspace"), tmp_path / "browser"
    artifacts.mkdir()
    line = f"hello from the bucket {uuid.uuid4().hex[:8]}"
    (workspace / "dags" / f"{DAG_ID}.py").write_text(PROBE_DAG.format(line=line))
    api_port, s3_port = free_port(), free_port()
    (workspace / ".env").write_text(
        f"LOCALFLOW_REMOTE_LOGS=s3://{BUCKET}/{FOLDER}\nLOCALFLOW_S3_PORT={s3_port}\nAIRFLOW__API__PORT={api_port}\n"
    )
    stack = start_up(workspace, api_port, tmp_path / "up.out")
    try:
        stack.wait_healthy(timeout=300)  # includes building .venv with requirements-s3.txt
        assert "requirements-s3.txt (LOCALFLOW_REMOTE_LOGS is set)" in stack.output()
        # The supervisor's first start of the S3 server is the server, not an Airflow subcommand: no restart.
        server_log = (workspace / ".airflow" / "logs" / "components" / "s3-server.log").read_text()
        assert "invalid choice" not in server_log, server_log
        assert "exited" not in stack.output(), stack.output()
        run_id = stack.trigger(DAG_ID)
        assert stack.wait_for_run(DAG_ID, run_id) == "success", stack.output()

        # In the bucket, under the folder the switch names, as Airflow lays out task logs. The task's
        # supervisor uploads once it has reported the task's end: a moment after the run shows success.
        def bucket() -> dict[str, str]:
            listed = subprocess.run(
                [
                    str(workspace / ".venv/bin/python"),
                    "-c",
                    LIST_BUCKET,
                    f"http://127.0.0.1:{s3_port}",
                    BUCKET,
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            return json.loads(listed.stdout)

        key = f"{FOLDER}/dag_id={DAG_ID}/run_id={run_id}/task_id={TASK_ID}/attempt=1.log"
        objects = wait_until(lambda: key in (found := bucket()) and found, 30, what=f"{key} in the bucket")
        assert line in objects[key]

        # Airflow empties its local copy once uploaded; gone altogether, what is served must be the bucket's.
        local = workspace / ".airflow" / "logs" / key.removeprefix(f"{FOLDER}/")
        assert local.read_text() == ""
        local.unlink()

        events = logged_events(stack, run_id)
        assert f"s3://{BUCKET}/{key}" in events and line in events, events

        with chromium(artifacts) as browser:
            browser.open(stack.url)
            browser.wait_for("//*[normalize-space()='Sign into Airflow']", "the login page")
            browser.log_in("admin", stack.admin_password)
            # The login lands on the home page; opening another before it has would race with it.
            browser.wait_for("//*[normalize-space()='Welcome']", "the home page after logging in")
            shown = browser.open_task_log(
                stack.url, DAG_ID, run_id, TASK_ID, open_groups=("Log message source details",)
            )
        assert line in shown and f"s3://{BUCKET}/{key}" in shown, shown

        # The local server's bucket outlives a restart (Airflow emptied its own copy of the log).
        assert stack.stop() == 0, stack.output()
        stack = start_up(workspace, api_port, tmp_path / "up-again.out")
        stack.wait_healthy()
        events = logged_events(stack, run_id)
        assert f"s3://{BUCKET}/{key}" in events and line in events, events
    except WaitTimeout as error:
        raise AssertionError(f"{error}\n`up` printed:\n{stack.output()}") from None
    finally:
        code = stack.stop()
    assert code == 0, stack.output()
