"""``python -m localflow s3-server``: the local S3 server that remote task logs go to (docs/logs.md).

moto's server mode, for the S3 API only, with the bucket that ``LOCALFLOW_REMOTE_LOGS`` names created at
start: Airflow's S3 log handler writes into an existing bucket and never creates one. Natively the
supervisor runs it on 127.0.0.1 (``LOCALFLOW_S3_PORT``) when the logs go to it; compose runs it as the
``s3`` service (profile ``s3``). ``s3-server --check`` is its healthcheck: the bucket answers.

moto keeps the bucket in memory: the logs last as long as the server does.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

from localflow import remote_logs
from localflow.errors import LocalflowError
from localflow.stopping import StopRequest

HOST_SETTING = "LOCALFLOW_S3_HOST"  # compose sets 0.0.0.0: the other services reach it as s3:9000


def address(env: Mapping[str, str]) -> tuple[str, int]:
    """Where the server listens: 127.0.0.1 unless told otherwise, on ``LOCALFLOW_S3_PORT``."""
    port = env.get(remote_logs.PORT_SETTING) or remote_logs.DEFAULT_PORT
    if not port.isdigit():
        raise LocalflowError(f"{remote_logs.PORT_SETTING}={port!r} is not a port number; fix it in .env.")
    return env.get(HOST_SETTING) or "127.0.0.1", int(port)


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
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="localflow",
            aws_secret_access_key="localflow",  # moto takes any credentials
        )
        client.create_bucket(Bucket=name)
        print(f"localflow: S3 server on http://{host}:{port}, bucket {name}", flush=True)
        while not stopping:
            time.sleep(0.5)
    finally:
        server.stop()
    return 0


def main(args: list[str]) -> int:
    """``python -m localflow s3-server [--check]``."""
    env = os.environ
    if args == ["--check"]:
        return 0 if bucket_answers(env) else 1
    if args:
        raise LocalflowError("usage: python -m localflow s3-server [--check]")
    return serve(env)
