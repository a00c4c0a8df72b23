"""docker-compose.yaml, checked without an engine: valid, documented, and safe by default."""

from __future__ import annotations

import json
import os
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


CODESPACE = {
    "CODESPACE_NAME": "fluffy-umbrella-5gq7r",
    "GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN": "app.github.dev",
}
# id, the shell's Codespaces variables, lines of .env, what every Airflow service gets (None: unset)
CODESPACE_CASES = (
    ("not-a-codespace", {}, "", {**dict.fromkeys(CODESPACE, ""), "AIRFLOW__API__BASE_URL": None}),
    ("codespace", CODESPACE, "", {**CODESPACE, "AIRFLOW__API__BASE_URL": None}),
    (
        "env-file-base-url",
        CODESPACE,
        "AIRFLOW__API__BASE_URL=https://airflow.example.com\n",
        {**CODESPACE, "AIRFLOW__API__BASE_URL": "https://airflow.example.com"},
    ),
)


@pytest.mark.parametrize(
    ("shell", "env_file", "expected"),
    [case[1:] for case in CODESPACE_CASES],
    ids=[c[0] for c in CODESPACE_CASES],
)
def test_codespaces_variables_pass_through(tmp_path: Path, shell, env_file, expected):
    """Compose hands the Codespaces variables to every Airflow service (whose entrypoint derives the base URL
    from them, as natively); a base URL of .env reaches them as it is; the execution API stays internal."""
    project = clean_copy(tmp_path)
    (project / ".env").write_text(env_file)
    outside = {name: value for name, value in os.environ.items() if name not in CODESPACE}
    result = compose(project, "config", "--format", "json", env={**outside, **shell})
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name in AIRFLOW_SERVICES:
        environment = services[name]["environment"]
        assert {key: environment.get(key) for key in expected} == expected, name
        assert (
            environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
            == "http://airflow-api-server:8080/execution/"
        )


def test_api_server_honours_proxy_headers():
    """The api-server reads X-Forwarded-Proto/-For (from the peer the entrypoint trusts: the gateway)."""
    command = compose_model()["services"]["airflow-api-server"]["command"]
    assert command == ["python", "-m", "localflow.execution_api", "api-server", "--proxy-headers"]
    assert "FORWARDED_ALLOW_IPS" not in compose_model()["services"]["airflow-api-server"]["environment"]


def test_admin_password_survives_a_rebuild():
    """The generated admin password (.env, the passwords file) lives in the bind-mounted workspace, which a
    rebuild of the containers (or of a Codespace) keeps; nothing of it is in a container's own files."""
    for name in AIRFLOW_SERVICES:
        spec = compose_model()["services"][name]
        passwords = spec["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
        workspace = spec["environment"]["LOCALFLOW_WORKSPACE"]
        assert passwords.startswith(workspace + "/.airflow/"), passwords
        mounts = [volume["type"] for volume in spec["volumes"] if volume["target"] == workspace]
        assert mounts == ["bind"], name


# The one line of .env that switches compose to Celery, and what it adds.
CELERY = "COMPOSE_PROFILES=celery\n"
CELERY_SERVICES = {"redis", "airflow-worker"}


@pytest.mark.parametrize(
    ("dotenv", "added"),
    [
        ("", set()),
        (CELERY, CELERY_SERVICES),
        ("COMPOSE_PROFILES=celery,flower\n", {*CELERY_SERVICES, "flower"}),
    ],
)
def test_one_line_of_env_adds_the_celery_services(dotenv: str, added: set[str]):
    """``COMPOSE_PROFILES=celery`` in .env adds Redis and the workers (and Flower with ``flower``)."""
    services = compose_model(dotenv)["services"]
    assert set(services) == {"postgres", *AIRFLOW_SERVICES, *added}
    for name in AIRFLOW_SERVICES:  # which the entrypoint turns into the CeleryExecutor
        assert services[name]["environment"]["COMPOSE_PROFILES"] == dotenv.partition("=")[2].strip()


def test_celery_services_are_healthchecked_and_private():
    """Redis is not published; the worker's healthcheck proves consumption and stops a worker that fails
    it; the worker stops warm; Flower is on 127.0.0.1 only; the other services wait for a healthy Redis."""
    services = compose_model("COMPOSE_PROFILES=celery,flower\n")["services"]
    redis = services["redis"]
    assert redis["image"] == "redis:7.2-bookworm" and "ports" not in redis
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    worker = services["airflow-worker"]
    assert "localflow.stack.workers check" in " ".join(worker["healthcheck"]["test"])
    assert "--stop-after" in " ".join(worker["healthcheck"]["test"])
    assert worker["restart"] == "unless-stopped" and worker["stop_grace_period"] == "1m0s"
    assert "airflow celery worker" in " ".join(worker["command"])
    assert [(port["host_ip"], port["published"]) for port in services["flower"]["ports"]] == [
        ("127.0.0.1", "5555")
    ]
    for name in (*AIRFLOW_SERVICES[1:], "airflow-worker"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert services[name]["environment"]["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"


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


@pytest.mark.parametrize(
    ("line", "image", "arg"), [("", "latest", ""), ("LOCALFLOW_AIRFLOW_VERSION=3.1.8\n", "3.1.8", "3.1.8")]
)
def test_the_airflow_release_builds_its_own_image(tmp_path: Path, line: str, image: str, arg: str):
    """Without the setting the image is as before; with it, the image of that release, tagged with it, so
    that a switch builds it on the next `docker compose up` (docs/releases.md)."""
    model = compose_with_env(tmp_path, line)
    for name in AIRFLOW_SERVICES:
        spec = model["services"][name]
        assert spec["image"] == f"localflow-airflow:{image}", name
        assert spec["build"]["args"]["AIRFLOW_VERSION"] == arg, name


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


PROFILES_LINE = "COMPOSE_PROFILES=${LOCALFLOW_REMOTE_LOGS:+s3}\n"


@pytest.mark.parametrize(("switch_on", "profiles"), [(False, "celery,"), (True, "celery,s3")])
def test_celery_and_s3_share_the_profiles_line(tmp_path: Path, switch_on: bool, profiles: str):
    """celery added to .env.example's one COMPOSE_PROFILES line, as docs/celery.md says: the Celery services,
    and the S3 server as well while the S3 switch is on; every Airflow service sees both profiles."""
    template = (REPO / ".env.example").read_text()
    assert template.count("\nCOMPOSE_PROFILES=") == 1 and PROFILES_LINE in template
    edited = template.replace(PROFILES_LINE, "COMPOSE_PROFILES=celery,${LOCALFLOW_REMOTE_LOGS:+s3}\n")
    if switch_on:
        edited = edited.replace(SWITCH_LINE, SWITCH_LINE.removeprefix("# "))
    project = clean_copy(tmp_path)
    (project / ".env").write_text(edited)
    result = compose(project, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) >= CELERY_SERVICES
    assert ("s3" in services) == switch_on
    for name in AIRFLOW_SERVICES:
        assert services[name]["environment"]["COMPOSE_PROFILES"] == profiles, name
