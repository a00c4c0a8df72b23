"""The remote logs switch: the Airflow settings it turns on, its errors, and when the local S3 server runs.

The stack test (tests/localflow/stack/test_remote_logs.py) runs it for real; these check each rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localflow.config import remote_logs, settings
from localflow.errors import LocalflowError
from testkit.environment import free_port
from testkit.native_stack import make_workspace, run_localflow, stack_environment

REMOTE_LOGGING = "AIRFLOW__LOGGING__REMOTE_LOGGING"
FOLDER = "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"


def native(tmp_path: Path, env_file: str) -> dict[str, str]:
    """The native environment of a workspace whose .env holds ``env_file`` (the shell sets nothing)."""
    (tmp_path / ".env").write_text(env_file)
    return settings.native_environment(tmp_path, base={"PATH": "/usr/bin"})


# .env lines, then what the native environment has (None: not set at all)
SETTINGS_CASES = (
    ("", {REMOTE_LOGGING: None, FOLDER: None, remote_logs.CONN_VARIABLE: None}),
    (
        "LOCALFLOW_REMOTE_LOGS=s3://localflow-logs/logs\n",
        {
            REMOTE_LOGGING: "True",
            FOLDER: "s3://localflow-logs/logs",
            remote_logs.CONN_ID_SETTING: "localflow_s3",
            remote_logs.ENDPOINT_SETTING: "http://127.0.0.1:9000",
        },
    ),
    (
        "LOCALFLOW_REMOTE_LOGS=s3://my-bucket\nLOCALFLOW_S3_PORT=19000\n",
        {FOLDER: "s3://my-bucket", remote_logs.ENDPOINT_SETTING: "http://127.0.0.1:19000"},
    ),
    (
        "LOCALFLOW_REMOTE_LOGS=s3://my-bucket/a/b\nAIRFLOW__LOGGING__REMOTE_LOG_CONN_ID=aws_default\n",
        {remote_logs.CONN_ID_SETTING: "aws_default", REMOTE_LOGGING: "True"},
    ),
)


@pytest.mark.parametrize(("env_file", "expected"), SETTINGS_CASES, ids=["off", "on", "port", "own-conn-id"])
def test_switch_sets_airflow_remote_logging(tmp_path: Path, env_file: str, expected: dict):
    """Unset changes nothing; set, Airflow's remote logging points at the bucket; .env's own values win."""
    env = native(tmp_path, env_file)
    assert {name: env.get(name) for name in expected} == expected


def test_default_connection_is_the_local_server(tmp_path: Path):
    """The connection localflow_s3 defaults to an aws connection whose endpoint is the local server."""
    env = native(tmp_path, "LOCALFLOW_REMOTE_LOGS=s3://localflow-logs/logs\nLOCALFLOW_S3_PORT=19001\n")
    connection = json.loads(env[remote_logs.CONN_VARIABLE])
    assert connection["conn_type"] == "aws"
    assert connection["extra"]["endpoint_url"] == "http://127.0.0.1:19001"


BAD_VALUES = ("local", "s3://", "s3://Upper_Case/logs", "https://bucket.s3.amazonaws.com/logs", "bucket/logs")


@pytest.mark.parametrize("value", BAD_VALUES)
def test_bad_switch_is_one_clear_line(value: str):
    """A value that is not s3://BUCKET[/FOLDER] says how to write it, and how to turn it off."""
    with pytest.raises(LocalflowError, match=r"is not an S3 location: write s3://BUCKET/FOLDER") as error:
        remote_logs.bucket({remote_logs.SWITCH: value})
    assert "\n" not in str(error.value)


YAML_OWN = "connections:\n  localflow_s3:\n    conn_type: aws\n"
YAML_ASTRO = "airflow:\n  connections:\n    - conn_id: localflow_s3\n      conn_type: aws\n"
YAML_OTHER = "connections:\n  my_db: postgresql://me@db/x\n"
# .env lines, airflow_settings.yaml, whether the stack runs the local S3 server
LOCAL_SERVER_CASES = (
    ("", YAML_OTHER, False),
    ("LOCALFLOW_REMOTE_LOGS=s3://localflow-logs/logs\n", YAML_OTHER, True),
    ("LOCALFLOW_REMOTE_LOGS=s3://localflow-logs/logs\n", None, True),
    ("LOCALFLOW_REMOTE_LOGS=s3://my-bucket/logs\n", YAML_OWN, False),
    ("LOCALFLOW_REMOTE_LOGS=s3://my-bucket/logs\n", YAML_ASTRO, False),
    (
        'LOCALFLOW_REMOTE_LOGS=s3://my-bucket/logs\nAIRFLOW_CONN_LOCALFLOW_S3={"conn_type": "aws"}\n',
        None,
        False,
    ),
    (
        "LOCALFLOW_REMOTE_LOGS=s3://my-bucket/logs\nAIRFLOW__LOGGING__REMOTE_LOG_CONN_ID=aws_default\n",
        None,
        False,
    ),
)


@pytest.mark.parametrize(
    ("env_file", "yaml", "local"),
    LOCAL_SERVER_CASES,
    ids=[
        "off",
        "on",
        "no-settings-file",
        "own-connection",
        "astro-layout",
        "connection-in-env",
        "other-conn-id",
    ],
)
def test_local_server_only_for_the_default_connection(tmp_path: Path, env_file: str, yaml: str | None, local):
    """A connection of the user's own means a real bucket: then nothing local is started."""
    settings_file = tmp_path / settings.SETTINGS_FILE_NAME
    if yaml is not None:
        settings_file.write_text(yaml)
    assert remote_logs.uses_local_server(native(tmp_path, env_file), settings_file) is local


# COMPOSE_PROFILES as compose filled it in from .env, whether airflow-init accepts it
PROFILE_CASES = (("s3", True), ("debug,s3", True), ("celery, s3", True), ("", False))


@pytest.mark.parametrize(("profiles", "accepted"), PROFILE_CASES, ids=["s3", "several", "spaced", "off"])
def test_compose_profile_must_be_on_for_the_local_server(tmp_path: Path, profiles: str, accepted: bool):
    """In compose, the switch without the profile (a switch below the COMPOSE_PROFILES line) is one line."""
    env = {
        remote_logs.SWITCH: "s3://localflow-logs/logs",
        "COMPOSE_PROFILES": profiles,
        # What compose gives the services (remote_logs.env, filled in without LOCALFLOW_S3_ENDPOINT).
        **remote_logs.airflow_settings({remote_logs.SWITCH: "s3://localflow-logs/logs"}),
    }
    if accepted:
        remote_logs.check_compose_profile(env, tmp_path / "none.yaml")
    else:
        with pytest.raises(
            LocalflowError, match=r"put COMPOSE_PROFILES=\$\{LOCALFLOW_REMOTE_LOGS:\+s3\} on a line"
        ):
            remote_logs.check_compose_profile(env, tmp_path / "none.yaml")


# .env line, what `python -m localflow up` says (one line, exit 1, before anything starts)
UP_CASES = (
    ("LOCALFLOW_REMOTE_LOGS=local\n", "LOCALFLOW_REMOTE_LOGS='local' is not an S3 location"),
    (
        "LOCALFLOW_REMOTE_LOGS=s3://localflow-logs/logs\n",
        "the S3 packages (requirements-s3.txt) are not installed: run `python3 -m localflow up`",
    ),
)


@pytest.mark.parametrize(("line", "expected"), UP_CASES, ids=["not-s3", "not-installed"])
def test_up_refuses_with_one_line(tmp_path: Path, line: str, expected: str):
    """`up` with a bad switch, or inside a venv without the S3 packages (this test's), stops at once."""
    # The test venv is the default one, which the S3 packages never enter.
    assert not remote_logs.provider_installed()
    workspace = make_workspace(tmp_path)
    (workspace / ".env").write_text(line)
    env = stack_environment(workspace, None, LOCALFLOW_S3_PORT=str(free_port()))
    result = run_localflow(env, "up")
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
