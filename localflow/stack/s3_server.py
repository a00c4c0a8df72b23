"""``python -m localflow s3-server``: the local S3 server that remote task logs go to (docs/logs.md).

moto's server mode, for the S3 API only, with the bucket that ``LOCALFLOW_REMOTE_LOGS`` names created at
start: Airflow's S3 log handler writes into an existing bucket and never creates one. Natively the
supervisor runs it on 127.0.0.1 (``LOCALFLOW_S3_PORT``) when the logs go to it; compose runs it as the
``s3`` service (profile ``s3``). ``s3-server --check`` is its healthcheck: the bucket answers.

moto keeps the bucket in memory; its recorder appends every request to ``.airflow/s3-server.jsonl`` of the
workspace, which the next start replays, so the logs outlive a restart (Airflow empties its local copy of a
log once uploaded: without this, a restart would lose them). Delete the file to start with an empty bucket.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from localflow.config import registry, remote_logs, settings
from localflow.errors import LocalflowError
from localflow.stopping import StopRequest

HOST_SETTING = "LOCALFLOW_S3_HOST"  # compose sets 0.0.0.0: the other services reach it as s3:9000
RECORDING_NAME = "s3-server.jsonl"


def recording(env: Mapping[str, str]) -> Path:
    """The bucket's requests, replayed at start: in the workspace's private state folder (it holds logs)."""
    return registry.workspace(env) / settings.STATE_DIR_NAME / RECORDING_NAME


def address(env: Mapping[str, str]) -> tuple[str, int]:
    """Where the server listens: 127.0.0.1 unless told otherwise, on ``LOCALFLOW_S3_PORT``."""
    port = env.get(remote_logs.PORT_SETTING) or remote_logs.DEFAULT_PORT
    if not port.isdigit():
        raise LocalflowError(f"{remote_logs.PORT_SETTING}={port!r} is not a port number; fix it in .env.")
    return env.get(HOST_SETTING) or "127.0.0.1", int(port)


def _is_write(line: str) -> bool:
    try:
        return json.loads(line).get("method") not in {"GET", "HEAD"}
    except (ValueError, AttributeError):
        return False  # a line cut short by a kill: nothing that can be replayed


def keep_writes(saved: Path) -> None:
    """Drop the reads from the recording (the UI's, the healthcheck's): replaying them changes nothing."""
    if not saved.exists():
        return
    lines = saved.read_text().splitlines(keepends=True)
    writes = [line for line in lines if _is_write(line)]
    if len(writes) < len(lines):
        saved.write_text("".join(writes))


def bucket_answers(env: Mapping[str, str], timeout: float = 2.0) -> bool:
    """True when the server is up and has the bucket (a HEAD of it; moto checks no credentials)."""
    host, port = address(env)
    host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    request = urllib.request.Request(f"http://{host}:{port}/{remote_logs.bucket(env)}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def serve(env: Mapping[str, str]) -> int:
    """Start moto's server, create the bucket, and serve until SIGTERM or Ctrl-C."""
    remote_logs.check_installed(env, in_container=os.environ.get("LOCALFLOW_CONTAINER") == "1")
    name = remote_logs.bucket(env)
    host, port = address(env)
    stopping = StopRequest()
    saved = recording(env)
    saved.parent.mkdir(mode=0o700, exist_ok=True)
    keep_writes(saved)
    # moto reads these once, when it is imported.
    os.environ.update({"MOTO_ENABLE_RECORDING": "True", "MOTO_RECORDER_FILEPATH": str(saved)})
    import boto3
    from botocore.exceptions import ClientError
    from moto.moto_api import recorder
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        local = f"http://127.0.0.1:{port}"
        if saved.exists():
            recorder.replay_recording(target_host=local)
        client = boto3.client(
            "s3",
            endpoint_url=local,
            region_name="us-east-1",
            aws_access_key_id="localflow",
            aws_secret_access_key="localflow",  # moto takes any credentials
        )
        try:
            client.head_bucket(Bucket=name)  # made by an earlier start, replayed
        except ClientError:
            client.create_bucket(Bucket=name)
        print(f"localflow: S3 server on http://{host}:{port}, bucket {name} (kept in {saved})", flush=True)
        while not stopping:
            time.sleep(0.5)
    finally:
        server.stop()
    return 0
