"""``.vscode/launch.json``: the configurations exist and use only paths that exist natively and in the dev container.

Resolved the way VS Code resolves them in each place: ``${workspaceFolder}`` is this checkout natively and
the dev container's ``workspaceFolder`` (the bind mount of this checkout) inside it;
``${command:python.interpreterPath}`` is ``python.defaultInterpreterPath`` of ``.vscode/settings.json``
natively and of ``devcontainer.json`` inside the container.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

from localflow.__main__ import BY_NAME
from localflow.debugging import support as debug
from localflow.editor import problems
from localflow.watcher.reparse import api_base_url
from testkit import vscode_tasks
from testkit.container_files import compose_model
from testkit.dap import launch_configuration, load_jsonc, substitute
from testkit.environment import REPO

LAUNCH_JSON = REPO / ".vscode" / "launch.json"
DEVCONTAINER = load_jsonc(REPO / ".devcontainer" / "devcontainer.json")
CONTAINER_WORKSPACE = PurePosixPath(DEVCONTAINER["workspaceFolder"])
REQUIRED = {
    "Airflow: debug this DAG file",
    "Airflow: debug one task",
    "Airflow: attach to a scheduled task",
    "Airflow: attach to a task on a Celery worker",
    "Airflow: debug this test file",
}
CONFIGURATIONS = load_jsonc(LAUNCH_JSON)["configurations"]


def native_interpreter() -> str:
    """The interpreter VS Code selects natively (``.vscode/settings.json``)."""
    settings = load_jsonc(REPO / ".vscode" / "settings.json")
    return substitute(settings["python.defaultInterpreterPath"], {"workspaceFolder": str(REPO)}, {})


def container_interpreter() -> str:
    """The interpreter VS Code selects in the dev container (``devcontainer.json``)."""
    return DEVCONTAINER["customizations"]["vscode"]["settings"]["python.defaultInterpreterPath"]


def container_path_on_host(path: str) -> Path | None:
    """Where a path inside the container is in this checkout (the bind mount), or None if outside it."""
    pure = PurePosixPath(path)
    if pure == CONTAINER_WORKSPACE or CONTAINER_WORKSPACE in pure.parents:
        return REPO / pure.relative_to(CONTAINER_WORKSPACE)
    return None


def used_paths(config: dict) -> list[str]:
    """Every file-system path a resolved configuration makes the debugger use."""
    paths = [config[key] for key in ("python", "cwd", "program") if key in config]
    paths += [arg for arg in config.get("args", []) if arg.startswith("/")]
    return paths


def test_every_configuration_is_there():
    """The configurations of the README and docs/debugging.md exist, with unique names, all for the Python debugger."""
    names = [config["name"] for config in CONFIGURATIONS]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED
    assert {config["type"] for config in CONFIGURATIONS} == {"debugpy"}


def test_the_workspace_is_the_bind_mount_the_container_sees():
    """Compose mounts this checkout at the dev container's workspaceFolder, so ${workspaceFolder} paths
    exist in both places exactly when they exist here."""
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    volumes = compose["services"][DEVCONTAINER["service"]]["volumes"]
    assert f".:{CONTAINER_WORKSPACE}" in volumes


def test_the_container_interpreter_is_the_images_python():
    """/usr/local/bin/python is the interpreter of the official python base image the Dockerfile uses,
    and the image installs the lock, which has debugpy and pytest."""
    assert container_interpreter() == "/usr/local/bin/python"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_BASE=python:\$\{PYTHON_VERSION\}-slim", dockerfile, re.MULTILINE)
    assert re.search(r"^debugpy==", (REPO / "requirements.txt").read_text(), re.MULTILINE)
    assert re.search(r"^pytest==", (REPO / "requirements-dev.txt").read_text(), re.MULTILINE)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_paths_exist_natively(name: str):
    """Resolved natively, every path a configuration uses exists in this checkout."""
    config = launch_configuration(
        LAUNCH_JSON,
        name,
        workspace=REPO,
        file=REPO / "dags" / "example_etl.py",
        python=native_interpreter(),
        inputs={"dagId": "example_etl", "taskId": "extract"},
    )
    for path in used_paths(config):
        assert Path(path).exists(), f"{name}: {path} does not exist"
    if "module" in config:
        assert config["module"] in {"localflow", "pytest"}
        assert config["module"] == "pytest" or (Path(config["cwd"]) / config["module"]).is_dir()
    if "pythonArgs" in config:  # `-m localflow.debugging.warm_runner`, found from the working folder
        flag, module = config["pythonArgs"]
        assert flag == "-m"
        location = Path(config["cwd"]) / module.replace(".", "/")
        assert location.with_suffix(".py").is_file() or (location / "__main__.py").is_file(), module


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_paths_exist_in_the_dev_container(name: str):
    """Resolved in the dev container, every path is in the bind-mounted workspace or the image's Python."""
    config = launch_configuration(
        LAUNCH_JSON,
        name,
        workspace=Path(str(CONTAINER_WORKSPACE)),
        file=Path(str(CONTAINER_WORKSPACE / "dags" / "example_etl.py")),
        python=container_interpreter(),
        inputs={"dagId": "example_etl", "taskId": "extract"},
    )
    for path in used_paths(config):
        if path == container_interpreter():
            continue  # the image's Python (test above)
        on_host = container_path_on_host(path)
        assert on_host is not None, f"{name}: {path} is outside the container's workspace"
        assert on_host.exists(), f"{name}: {path} ({on_host}) does not exist"


def test_attach_connects_to_the_port_tasks_listen_on():
    """The attach configuration connects on loopback to the port a waiting task opens by default."""
    config = next(config for config in CONFIGURATIONS if config["name"] == debug.ATTACH)
    assert config["request"] == "attach"
    assert config["connect"] == {"host": debug.DEBUG_HOST, "port": debug.DEFAULT_PORT}


def test_worker_attach_connects_to_the_worker_over_the_compose_network():
    """The Celery worker configuration connects, from the editor's container, to the compose service whose
    tasks listen off loopback, on the default port; only that service listens off loopback, it publishes
    nothing, and it shares a network with the editor's service."""
    config = next(config for config in CONFIGURATIONS if config["name"] == debug.ATTACH_WORKER)
    assert config["request"] == "attach"
    services = compose_model("COMPOSE_PROFILES=celery,flower\n")["services"]
    off_loopback = {
        name: service["environment"][debug.DEBUG_HOST_SETTING]
        for name, service in services.items()
        if debug.DEBUG_HOST_SETTING in (service.get("environment") or {})
    }
    assert off_loopback == {"airflow-worker": "0.0.0.0"}
    assert config["connect"] == {"host": "airflow-worker", "port": debug.DEFAULT_PORT}
    worker, editor = services["airflow-worker"], services[DEVCONTAINER["service"]]
    assert "ports" not in worker
    assert set(worker["networks"]) & set(editor["networks"])


def test_folder_open_task_starts_the_runner_f5_uses():
    """.vscode/tasks.json starts the warm runner when the folder opens, with what F5's DAG configurations
    run it with: their interpreter and ``pythonArgs`` plus ``--start``, in their working folder."""
    tasks = load_jsonc(REPO / ".vscode" / "tasks.json")["tasks"]
    [task] = [task for task in tasks if task["label"] == "localflow: start the warm debug runner"]
    assert task["runOptions"]["runOn"] == "folderOpen"
    for name in ("Airflow: debug this DAG file", "Airflow: debug one task"):
        [config] = [config for config in CONFIGURATIONS if config["name"] == name]
        assert task["command"] == config["python"]
        assert task["args"] == [*config["pythonArgs"], "--start"]
        assert task["options"]["cwd"] == config["cwd"]
    assert task["presentation"]["reveal"] != "always"  # quiet: it only says what it did


EDITOR_TASKS = {"localflow: problems": "problems", "localflow: run this DAG": "run"}


@pytest.mark.parametrize(("label", "command"), EDITOR_TASKS.items())
def test_editor_tasks_run_their_command_with_f5s_interpreter(label: str, command: str):
    """The problems and run tasks start `python -m localflow COMMAND` with the interpreter and working
    folder of F5's configurations: .venv natively, the image's Python in the dev container."""
    [config] = [config for config in CONFIGURATIONS if config["name"] == "Airflow: debug this DAG file"]
    raw = vscode_tasks.task(
        label, REPO, REPO / "dags" / "example_etl.py", python="${command:python.interpreterPath}"
    )
    assert raw["command"] == config["python"]
    assert raw["options"]["cwd"] == str(REPO) and config["cwd"] == "${workspaceFolder}"
    assert raw["args"][:3] == ["-m", "localflow", command] and command in BY_NAME
    if command == "run":
        assert raw["args"][3:] == [str(REPO / "dags" / "example_etl.py")]  # ${file}: the open DAG file


def test_the_problems_task_finds_the_stack_and_its_files_from_the_dev_container():
    """In the dev container the problems task asks compose's api-server (the port devcontainer.json
    forwards), and the paths the stack reports there come out relative to the workspace folder, which
    the matcher resolves to the same files in the container."""
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    env = compose["services"][DEVCONTAINER["service"]]["environment"]
    assert env["LOCALFLOW_WORKSPACE"] == str(CONTAINER_WORKSPACE)
    url = api_base_url(env)
    assert url == "http://airflow-api-server:8080"
    assert url.removeprefix("http://") in DEVCONTAINER["forwardPorts"]
    dags, plugins = (Path(env[f"AIRFLOW__CORE__{name}_FOLDER"]) for name in ("DAGS", "PLUGINS"))
    workspace = problems.Workspace(Path(str(CONTAINER_WORKSPACE)), dags, plugins)
    trace = f'Traceback (most recent call last):\n  File "{plugins}/etl_helpers.py", line 3, in <module>\nNameError: x\n'
    [helper, dag] = problems.from_import_error("example_etl.py", trace, workspace)
    assert (helper.path, dag.path) == ("plugins/etl_helpers.py", "dags/example_etl.py")
    matcher = vscode_tasks.ProblemMatcher.of(
        vscode_tasks.task("localflow: problems", Path(str(CONTAINER_WORKSPACE)))
    )
    marker = matcher.marker(str(helper))
    assert marker and marker.file == Path(str(CONTAINER_WORKSPACE / "plugins" / "etl_helpers.py"))
    assert container_path_on_host(str(marker.file)) == REPO / "plugins" / "etl_helpers.py"
