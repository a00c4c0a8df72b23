"""S3 task logs in compose: a fresh copy whose ``.env`` has the switch uncommented, ``docker compose up``.

The image is built with the S3 lock (build arg from the switch), the profile's ``s3`` service (the local S3
server) is healthy before Airflow, and a task's log is in its bucket and served from there. docs/logs.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from localflow.polling import wait_until
from localflow.secrets import rules
from testkit.containers import DesktopUser, Engine, Stack, stack_on_fresh_copy

pytestmark = pytest.mark.containers

SWITCH_LINE = "# LOCALFLOW_REMOTE_LOGS=s3://localflow-logs/logs\n"
DAG_ID = "example_etl"
LIST_BUCKET = (
    "import boto3, json; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:9000', region_name='us-east-1',"
    " aws_access_key_id='x', aws_secret_access_key='x'); print(json.dumps([o['Key'] for o in"
    " s3.list_objects_v2(Bucket='localflow-logs').get('Contents', [])]))"
)


@pytest.fixture(scope="module")
def stack(engine: Engine, desktop_user: DesktopUser, base_dir: Path) -> Iterator[Stack]:
    """A fresh copy with the switch on in .env, up --wait. The .env is the one `python -m localflow secrets`
    makes (.env.example with the secrets filled in), the switch's line uncommented in place."""
    with stack_on_fresh_copy(engine, desktop_user, base_dir, "s3logs") as stack:
        template = (stack.workspace / ".env.example").read_text()
        assert SWITCH_LINE in template
        for secret in rules.SECRETS:
            template = template.replace(f"\n{secret.name}=\n", f"\n{secret.name}={secret.generate()}\n")
        env_file = stack.workspace / ".env"
        env_file.write_text(template.replace(SWITCH_LINE, SWITCH_LINE.removeprefix("# ")))
        env_file.chmod(0o600)
        os.chown(env_file, desktop_user.uid, desktop_user.gid)  # the user's own file, as on a desktop
        stack.up_output = stack.compose("up", "--wait", "--wait-timeout", "300", timeout=1200).stderr
        yield stack


def test_s3_server_runs_with_the_stack(stack: Stack):
    """Every service is healthy, the s3 service among them, and it publishes no port."""
    assert stack.problems() == []
    services = stack.services()
    assert services["s3"]["Health"] == "healthy"
    assert not services["s3"].get("Publishers") or all(
        not publisher.get("PublishedPort") for publisher in services["s3"]["Publishers"]
    )


def test_task_log_is_in_the_bucket_and_served_from_it(stack: Stack):
    """A run of example_etl: each task's log object is in the bucket, and the API reads it from s3://."""
    stack.wait_for_dags((DAG_ID,))
    run = stack.run_dag(DAG_ID)
    assert run["state"] == "success", run
    prefix = f"logs/dag_id={DAG_ID}/run_id={run['dag_run_id']}/task_id="

    def uploaded() -> list[str]:
        keys = json.loads(stack.compose("exec", "-T", "s3", "python", "-c", LIST_BUCKET, timeout=120).stdout)
        return [key for key in keys if key.startswith(prefix)]

    # Each task's supervisor uploads once it has reported the task's end: the last one a moment after the
    # run shows success.
    wait_until(
        lambda: len(uploaded()) == 3, 60, interval=2, what=lambda: f"3 task logs in the bucket: {uploaded()}"
    )
    status, tasks = stack.request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances")
    assert status == 200, tasks
    task_id = tasks["task_instances"][0]["task_id"]
    status, log = stack.request(
        "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/{task_id}/logs/1"
    )
    assert status == 200, log
    events = [entry.get("event") for entry in log["content"]]
    assert f"s3://localflow-logs/{prefix}{task_id}/attempt=1.log" in events, events
