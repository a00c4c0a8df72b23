"""docker-compose.yaml, checked without an engine: valid, documented, and safe by default."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.container_files import REPO, clean_copy, compose, compose_model

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-dag-watcher",
)
LONG_RUNNING = (
    "postgres",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-dag-watcher",
)


def test_compose_config_is_valid(tmp_path: Path):
    """``docker compose config -q`` accepts the file on a fresh clone (no .env)."""
    result = compose(clean_copy(tmp_path), "config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_spec_schema():
    """The file validates against the Compose Specification schema."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(REPO / "docker-compose.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_project_and_services():
    """Project ``localflow`` with Postgres, the one-shot init and the four Airflow components."""
    model = compose_model()
    assert model["name"] == "localflow"
    assert set(model["services"]) == {"postgres", *AIRFLOW_SERVICES}
    assert model["services"]["postgres"]["image"] == "postgres:16"


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_long_running_services_have_healthchecks(service: str):
    """Every long-running service probes a real endpoint and restarts by itself."""
    spec = compose_model()["services"][service]
    test = " ".join(spec["healthcheck"]["test"])
    assert re.search(
        r"pg_isready|/api/v2/monitor/health|:8974/health"
        r"|localflow\.container\.healthcheck \w+Job|localflow watch --check",
        test,
    )
    assert spec["restart"] == "unless-stopped"


@pytest.mark.parametrize("service", AIRFLOW_SERVICES[1:])
def test_components_wait_for_database_and_init(service: str):
    """Components start only after Postgres is healthy and airflow-init has finished."""
    depends_on = compose_model()["services"][service]["depends_on"]
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["airflow-init"]["condition"] == "service_completed_successfully"


def test_init_is_one_shot_and_makes_secrets():
    """airflow-init runs the secrets hook, the admin password and the migration once."""
    spec = compose_model()["services"]["airflow-init"]
    assert spec["command"] == ["python", "-m", "localflow", "init"]
    assert spec["restart"] == "no"


def test_all_airflow_services_share_the_common_environment():
    """One environment (executor, database, execution API, secrets) for every Airflow service."""
    services = compose_model()["services"]
    reference = services["airflow-api-server"]["environment"]
    # Only the scheduler adds something: the health endpoint its own healthcheck asks.
    scheduler_only = {
        "ENABLE_HEALTH_CHECK",
        "SCHEDULER_HEALTH_CHECK_SERVER_HOST",
        "SCHEDULER_HEALTH_CHECK_SERVER_PORT",
    }
    for name in AIRFLOW_SERVICES:
        environment = dict(services[name]["environment"])
        if name == "airflow-scheduler":
            extra = {key: environment.pop(key) for key in set(environment) - set(reference)}
            assert {key.removeprefix("AIRFLOW__SCHEDULER__") for key in extra} == scheduler_only
        assert environment == reference, name
    assert (
        reference["AIRFLOW__CORE__EXECUTOR"] == "localflow.stack.executor.LocalExecutor"
    )  # on-demand workers
    assert reference["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-api-server:8080/execution/"
    assert reference["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith(
        "postgresql+psycopg2://airflow:airflow@postgres/"
    )


def test_secrets_are_read_at_start_not_baked_into_compose():
    """Each secret comes from .env through Airflow's *_CMD options, never as a literal in the file."""
    env = compose_model()["services"]["airflow-scheduler"]["environment"]
    for name in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert env[f"{name}_CMD"] == f"python -m localflow secrets get {name}"
        assert name not in env  # no value without a .env


def test_published_ports_bind_loopback_only():
    """Only the UI is published, on 127.0.0.1; Postgres is not published at all."""
    published = {
        name: spec.get("ports", []) for name, spec in compose_model()["services"].items() if spec.get("ports")
    }
    assert set(published) == {"airflow-api-server"}
    for port in published["airflow-api-server"]:
        assert port["host_ip"] == "127.0.0.1"
        assert port["target"] == 8080


def test_workspace_is_bind_mounted_and_host_reachable():
    """dags/ and plugins/ are live (workspace bind mount) and DAGs reach the host."""
    for name in AIRFLOW_SERVICES:
        spec = compose_model()["services"][name]
        mounts = {(volume["type"], volume["target"]) for volume in spec["volumes"]}
        assert ("bind", "/workspaces/localflow") in mounts
        assert spec["extra_hosts"] == ["host.docker.internal=host-gateway"] or spec["extra_hosts"] == [
            "host.docker.internal:host-gateway"
        ]
    postgres = compose_model()["services"]["postgres"]
    assert postgres["volumes"][0]["type"] == "volume"


def test_header_documents_every_variable():
    """Every ${VARIABLE} the file reads is listed in its header."""
    text = (REPO / "docker-compose.yaml").read_text()
    header = text.split("\nname:", 1)[0]
    # $${VAR} is an escaped dollar (the container shell expands it), not a compose variable.
    for variable in set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text)):
        assert re.search(rf"^# {variable}\b", header, re.MULTILINE), (
            f"{variable} is not documented in the header"
        )


SWITCH_LINE = "# LOCALFLOW_REMOTE_LOGS=s3://localflow-logs/logs\n"


def compose_with_env(tmp_path: Path, extra: str = "", *, switch_on: bool = False) -> dict:
    """The model with a .env made from .env.example (as `secrets` makes it), its remote logs line
    uncommented where it is (``switch_on``, as docs/logs.md says), and ``extra`` lines at the end."""
    project = clean_copy(tmp_path)
    template = (REPO / ".env.example").read_text()
    assert SWITCH_LINE in template
    if switch_on:
        template = template.replace(SWITCH_LINE, SWITCH_LINE.removeprefix("# "))
    (project / ".env").write_text(template + extra)
    result = compose(project, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


REMOTE_LOGGING = "AIRFLOW__LOGGING__REMOTE_LOGGING"


def test_remote_logs_are_off_by_default(tmp_path: Path):
    """A fresh .env: no S3 service, no remote logging setting, no S3 packages in the image."""
    model = compose_with_env(tmp_path)
    assert "s3" not in model["services"]
    for name in AIRFLOW_SERVICES:
        spec = model["services"][name]
        assert not {key for key in spec["environment"] if "REMOTE" in key or "S3" in key}, name
        assert spec["build"]["args"]["INSTALL_S3"] == ""


def test_remote_logs_switch_starts_the_s3_server_and_points_airflow_at_it(tmp_path: Path):
    """LOCALFLOW_REMOTE_LOGS in .env: the profile's S3 server (healthy before Airflow, not published),
    Airflow's remote logging to the bucket through localflow_s3, and the S3 packages in the image."""
    model = compose_with_env(tmp_path, switch_on=True)
    s3 = model["services"]["s3"]
    assert s3["command"] == ["python", "-m", "localflow", "s3-server"]
    assert s3["healthcheck"]["test"] == ["CMD", "python", "-m", "localflow", "s3-server", "--check"]
    assert not s3.get("ports")
    for name in AIRFLOW_SERVICES[1:]:
        spec = model["services"][name]
        assert spec["depends_on"]["s3"]["condition"] == "service_healthy", name
        assert spec["environment"][REMOTE_LOGGING] == "True"
        assert spec["environment"]["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"] == "s3://localflow-logs/logs"
        assert spec["environment"]["AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID"] == "localflow_s3"
        connection = json.loads(spec["environment"]["AIRFLOW_CONN_LOCALFLOW_S3"])
        assert connection["extra"]["endpoint_url"] == "http://s3:9000"
        assert spec["build"]["args"]["INSTALL_S3"] == "true"
    # What airflow-init checks: the profile is on (docs/logs.md; remote_logs.check_compose_profile).
    assert model["services"]["airflow-init"]["environment"]["COMPOSE_PROFILES"] == "s3"


def test_remote_logs_connection_from_env_wins(tmp_path: Path):
    """A connection of the user's own in .env (a real bucket) replaces the local server's."""
    own = '{"conn_type": "aws", "extra": {"region_name": "eu-west-1"}}'
    model = compose_with_env(
        tmp_path,
        f"LOCALFLOW_REMOTE_LOGS=s3://my-bucket/airflow\nAIRFLOW_CONN_LOCALFLOW_S3={own}\n",
        switch_on=True,
    )
    environment = model["services"]["airflow-scheduler"]["environment"]
    assert environment["AIRFLOW_CONN_LOCALFLOW_S3"] == own
    assert environment["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"] == "s3://my-bucket/airflow"
