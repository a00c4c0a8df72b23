"""localflow/config/airflow.env is in force: the configuration each running component sees, natively and in compose.

Natively every component is asked by its own environment (read from the running process) what Airflow
makes of it; the api-server also answers through its config endpoint. In compose, every Airflow service
gets the tuned settings unchanged.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from localflow.config import settings
from testkit.container_files import compose_model
from testkit.native_stack import components, running_stack
from testkit.stock import tuned_settings

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# What Airflow's configuration resolves for each AIRFLOW__SECTION__OPTION given on stdin.
READ_CONFIG = """
import json, sys
from airflow.configuration import conf
names = json.load(sys.stdin)
print(json.dumps({name: conf.get(*name[len("AIRFLOW__"):].lower().split("__", 1)) for name in names}))
"""


def airflow_settings() -> dict[str, str]:
    """The tuned Airflow options of airflow.env (the ones this workspace changes for speed and memory)."""
    return {name: value for name, value in tuned_settings().items() if name.startswith("AIRFLOW__")}


def test_tuning_section_is_not_empty():
    """The benchmark and these tests compare something: the tuning section holds Airflow options."""
    assert len(airflow_settings()) >= 5
    assert {"AIRFLOW__CORE__PARALLELISM", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL"} <= set(
        airflow_settings()
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory, postgres):
    """A native stack with nothing but airflow.env's settings (and free ports)."""
    with running_stack(tmp_path_factory.mktemp("settings"), postgres.create()) as running:
        yield running


# The api-server renames itself with setproctitle, which overwrites its /proc/PID/environ: it is asked
# through its config endpoint instead (test_api_server_config_endpoint_shows_them).
READABLE_COMPONENTS = ("scheduler", "dag-processor", "triggerer")


@pytest.fixture(scope="module")
def effective(stack) -> dict[str, dict[str, str]]:
    """Per component: what Airflow's configuration resolves under that process's own environment."""
    found = components(stack)
    assert set(AIRFLOW_COMPONENTS) <= set(found), found
    result = {}
    for name in READABLE_COMPONENTS:
        output = subprocess.run(
            [sys.executable, "-c", READ_CONFIG],
            input=json.dumps(sorted(airflow_settings())),
            env=found[name].environ(),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        result[name] = json.loads(output.strip().splitlines()[-1])
    return result


@pytest.mark.stack
@pytest.mark.parametrize("component", READABLE_COMPONENTS)
def test_each_component_sees_the_tuned_settings(effective, component: str):
    """The scheduler, dag-processor and triggerer each resolve airflow.env's values."""
    assert effective[component] == airflow_settings()


@pytest.mark.stack
def test_api_server_config_endpoint_shows_them(stack):
    """The api-server's own config endpoint (expose_config) reports the tuned values."""
    status, body = stack.api.request("GET", "/api/v2/config")
    assert status == 200, body
    shown = {
        f"AIRFLOW__{section['name'].upper()}__{option['key'].upper()}": option["value"]
        for section in body["sections"]
        for option in section["options"]
    }
    assert {name: shown.get(name) for name in airflow_settings()} == airflow_settings()


def test_compose_services_get_the_same_settings():
    """Every Airflow service in docker-compose.yaml gets airflow.env's tuned settings unchanged."""
    services = {
        name: spec for name, spec in compose_model()["services"].items() if name.startswith("airflow-")
    }
    assert services
    for name, spec in services.items():
        environment = spec["environment"]
        assert {key: environment.get(key) for key in tuned_settings()} == tuned_settings(), name


def test_shared_settings_include_the_tuning():
    """The native runner's environment is built from the same file."""
    env = settings.native_environment(settings.WORKSPACE, base={}, read_env_file=False)
    assert {key: env[key] for key in tuned_settings()} == tuned_settings()
