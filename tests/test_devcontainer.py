"""devcontainer.json, checked without an engine: schema, and agreement with docker-compose.yaml.

The schema in tests/schemas/ is the Development Containers specification's devContainer.base.schema.json,
copied unchanged from devcontainers/spec (no package ships it).
"""

from __future__ import annotations

import subprocess
import sys

from testkit.container_files import REPO, compose_model, devcontainer


def test_schema():
    """devcontainer.json validates against the specification's schema (as JSON with comments)."""
    result = subprocess.run(
        [
            sys.executable, "-m", "check_jsonschema", "--force-filetype", "json5",
            "--schemafile", str(REPO / "tests" / "schemas" / "devContainer.base.schema.json"),
            str(REPO / ".devcontainer" / "devcontainer.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_editor_attaches_to_the_scheduler_and_starts_everything():
    """The editor's service is the scheduler; every compose service is started and stopped with it."""
    config = devcontainer()
    services = compose_model()["services"]
    assert config["dockerComposeFile"] == ["../docker-compose.yaml"]
    assert config["service"] == "airflow-scheduler"
    # Every service of the active profiles (COMPOSE_PROFILES in .env), not a fixed list without Celery's.
    assert "runServices" not in config
    assert config["service"] in services
    assert config["shutdownAction"] == "stopCompose"
    assert config["overrideCommand"] is False


def test_workspace_folder_is_the_mounted_workspace():
    """The folder VS Code opens is where compose mounts the repository."""
    service = compose_model()["services"][devcontainer()["service"]]
    targets = {volume["target"] for volume in service["volumes"] if volume["type"] == "bind"}
    assert devcontainer()["workspaceFolder"] in targets


def test_post_create_hook_makes_the_secrets():
    """The post-create hook is the secrets command."""
    assert devcontainer()["postCreateCommand"] == "python -m localflow secrets"


def test_post_start_hook_starts_the_warm_runner_with_f5s_interpreter():
    """Each container start starts the warm debug runner with the interpreter F5 uses there (a runner of
    another interpreter would be replaced by the first F5)."""
    config = devcontainer()
    interpreter = config["customizations"]["vscode"]["settings"]["python.defaultInterpreterPath"]
    assert config["postStartCommand"] == f"{interpreter} -m localflow.debugging.warm_runner --start"


def test_ui_port_is_forwarded_and_labelled():
    """Port 8080 of the api-server is forwarded as "Airflow UI"."""
    config = devcontainer()
    forwarded = [port for port in config["forwardPorts"] if str(port).endswith("8080")]
    assert forwarded == ["airflow-api-server:8080"]
    assert config["portsAttributes"][forwarded[0]]["label"] == "Airflow UI"
    published = compose_model()["services"]["airflow-api-server"]["ports"]
    assert [port["target"] for port in published] == [8080]


def test_vscode_customizations():
    """Python, debugpy and ruff extensions; the image's interpreter; pytest; ruff format on save."""
    vscode = devcontainer()["customizations"]["vscode"]
    assert {"ms-python.python", "ms-python.debugpy", "charliermarsh.ruff"} <= set(vscode["extensions"])
    settings = vscode["settings"]
    assert settings["python.defaultInterpreterPath"] == "/usr/local/bin/python"
    assert settings["python.testing.pytestEnabled"] is True
    assert settings["[python]"]["editor.defaultFormatter"] == "charliermarsh.ruff"
    assert settings["[python]"]["editor.formatOnSave"] is True


def test_recommended_extensions_match():
    """The native recommendations (.vscode/extensions.json) are the dev container's extensions."""
    import json5

    recommended = json5.loads((REPO / ".vscode" / "extensions.json").read_text())["recommendations"]
    assert set(recommended) == set(devcontainer()["customizations"]["vscode"]["extensions"])


def test_host_requirements_fit_a_small_codespace():
    """A 2-core Codespace is enough."""
    requirements = devcontainer()["hostRequirements"]
    assert requirements["cpus"] <= 2
    assert int(requirements["memory"].rstrip("gb")) <= 8
