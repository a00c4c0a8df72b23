""" "Reopen in Container" for real: the Dev Containers CLI on a fresh copy, then what a developer does in it.

One dev container stack for the module, brought up by ``devcontainer up`` as a desktop user (UID 1000)
on a fresh copy of the repository without ``.env``. The tests follow the developer: the stack is
healthy, the secrets exist, the terminal runs Airflow, ruff and the DAG tests; a DAG run is triggered
through the published port; a connection with a password survives ``docker compose down`` + ``up`` and
a rebuild of the dev container; no image holds a secret. Needs ../shared/containers (see its README).
"""

from __future__ import annotations

import secrets as random
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from localflow.polling import wait_until
from localflow.secrets import rules
from testkit import debug_runs
from testkit.browser import chromium
from testkit.containers import (
    DesktopUser,
    Engine,
    Stack,
    stack_on_fresh_copy,
)
from testkit.environment import EXAMPLE_DAGS

pytestmark = pytest.mark.containers

DAG_ID = "example_etl"
CONNECTION_ID = "localflow_containers_test"
# The DAG tests inside the editor use the stack's own PostgreSQL (the airflow user may create databases).
TEST_POSTGRES = "postgresql+psycopg2://airflow:airflow@postgres:5432"


@pytest.fixture(scope="module")
def stack(engine: Engine, desktop_user: DesktopUser, base_dir: Path) -> Iterator[Stack]:
    """The dev container of a fresh copy, up and healthy; torn down with ``down -v`` after the module."""
    with stack_on_fresh_copy(engine, desktop_user, base_dir, "devcontainer") as stack:
        result = stack.devcontainer("up")
        stack.up_output = result.stdout + result.stderr
        stack.wait_healthy()
        yield stack


@pytest.fixture(scope="module")
def env_after_create(stack: Stack) -> bytes:
    """.env as the first start left it (made by airflow-init, checked by the post-create hook)."""
    return stack.env_file()


@pytest.fixture(scope="module")
def finished_runs(stack: Stack) -> dict[str, dict]:
    """A run of every example DAG triggered through the REST API (as the UI's Trigger button does),
    all at once, each waited for until it finished; by dag_id."""
    stack.wait_for_dags(EXAMPLE_DAGS)
    run_ids = {dag_id: stack.api.trigger(dag_id) for dag_id in EXAMPLE_DAGS}
    return {dag_id: stack.wait_for_run(dag_id, run_id) for dag_id, run_id in run_ids.items()}


@pytest.fixture(scope="module")
def finished_run(finished_runs: dict[str, dict]) -> dict:
    """The finished run of example_etl."""
    return finished_runs[DAG_ID]


@pytest.fixture(scope="module")
def connection_password(stack: Stack) -> str:
    """A connection with a password, created through the REST API; returns the password."""
    password = random.token_urlsafe(16)
    payload = {
        "connection_id": CONNECTION_ID,
        "conn_type": "postgres",
        "host": "db.example.invalid",
        "login": "analyst",
        "password": password,
    }
    status, body = stack.request("POST", "/api/v2/connections", payload)
    assert status == 201, body
    return password


def test_every_service_is_healthy(stack: Stack):
    """Postgres and every Airflow service report healthy; airflow-init ran once and exited 0."""
    assert stack.problems() == []


def test_post_create_hook_found_complete_secrets(stack: Stack, env_after_create: bytes):
    """The post-create hook ran after airflow-init had made .env, and changed nothing in it."""
    assert "Running the postCreateCommand" in stack.up_output
    assert ".env: all secrets present and valid; nothing changed." in stack.up_output
    assert set(stack.secret_values()) == {secret.name for secret in rules.SECRETS}


def test_env_file_belongs_to_the_user_and_is_private(stack: Stack, env_after_create: bytes):
    """.env was written from a container, yet belongs to the desktop user, mode 0600."""
    status = (stack.workspace / ".env").stat()
    assert (status.st_uid, status.st_gid) == (stack.user.uid, stack.user.gid)
    assert stat.S_IMODE(status.st_mode) == 0o600


def test_editor_user_is_the_workspace_owner(stack: Stack):
    """The terminal's user has the desktop user's UID and GID, and the root group keeps GID 0."""
    output = stack.exec("sh", "-c", "id -u; id -g; getent group 0 | cut -d: -f1").stdout.split()
    assert output[-3:] == [str(stack.user.uid), str(stack.user.gid), "root"]


def test_airflow_dags_list_shows_the_example_dags(stack: Stack):
    """``airflow dags list`` in the editor's terminal lists every example DAG."""
    stack.wait_for_dags(EXAMPLE_DAGS)
    output = stack.exec("airflow", "dags", "list", "--output", "plain").stdout
    for dag_id in EXAMPLE_DAGS:
        assert dag_id in output


def test_ruff_check_passes(stack: Stack):
    """``ruff check`` in the editor's terminal finds nothing in a fresh copy."""
    stack.exec("ruff", "check")


def test_dag_tests_pass(stack: Stack):
    """The DAG tests (``pytest tests/dags``) pass in the editor, on SQLite and on the stack's PostgreSQL."""
    result = stack.exec(
        "python",
        "-m",
        "pytest",
        "tests/dags",
        "-q",
        env={"LOCALFLOW_TEST_POSTGRES": TEST_POSTGRES},
        timeout=600,
    )
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]


F5_COMMAND = ("python", "-m", "localflow.debugging.warm_runner", "-m", "localflow", "dag-test")


def test_f5_runs_forked_from_the_warm_runner_in_the_editor(stack: Stack):
    """What F5 starts in the editor (launch.json's pythonArgs, without the debugger), on every example
    DAG: the first run starts the warm runner, the next ones are forked from it, and each succeeds on the
    stack's PostgreSQL."""
    try:
        for number, dag_id in enumerate((DAG_ID, *EXAMPLE_DAGS)):
            result = stack.exec(*F5_COMMAND, f"dags/{dag_id}.py", timeout=300)
            assert f"{dag_id} finished: success" in result.stdout, result.stdout[-2000:]
            started_runner = "starting the warm debug runner" in result.stderr
            assert started_runner == (number == 0), result.stderr[-2000:]
    finally:
        stack.exec("python", "-m", "localflow.debugging.warm_runner", "--stop", check=False)


BROKEN_DAG = """import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def broken_in_editor():
    @task
    def step():
        return 1 +

    step()


broken_in_editor()
"""


def test_problems_and_run_this_dag_in_the_editor(stack: Stack):
    """What the editor's tasks run (``.vscode/tasks.json``), in the editor's terminal: a DAG file saved with
    a syntax error is one problem at its line, named by its workspace path (not the container's), and gone
    once the file is fixed; "run this DAG" runs the open file's DAG on the stack and ends with its state."""
    path = stack.workspace / "dags" / "broken_in_editor.py"
    path.write_text(BROKEN_DAG)
    stack.user.give(path)
    try:

        def problems() -> str:
            result = stack.exec("python", "-m", "localflow", "problems", "--once", check=False)
            return result.stdout if result.returncode == 1 else ""

        found = wait_until(problems, 120, interval=2, what="the syntax error among the problems")
        assert "dags/broken_in_editor.py:9:" in found and ": error: " in found, found
        assert "/opt/airflow" not in found, found
    finally:
        path.unlink()
    wait_until(
        lambda: (
            "broken_in_editor"
            not in stack.exec("python", "-m", "localflow", "problems", "--once", check=False).stdout
        ),
        120,
        interval=2,
        what="the problem gone after the fix",
    )
    result = stack.exec("python", "-m", "localflow", "run", f"dags/{DAG_ID}.py", timeout=300)
    assert f"{DAG_ID} run " in result.stdout and "finished: success" in result.stdout, result.stdout[-2000:]


def test_rest_dag_runs_succeed_on_the_published_port(stack: Stack, finished_runs: dict[str, dict]):
    """A run of every example DAG triggered through the REST API on 127.0.0.1 (admin, generated password)
    succeeds."""
    assert {dag_id: run["state"] for dag_id, run in finished_runs.items()} == dict.fromkeys(
        EXAMPLE_DAGS, "success"
    )


def test_ui_logs_in_on_the_published_port(stack: Stack, finished_run: dict, tmp_path: Path):
    """The Airflow UI (the port VS Code forwards as "Airflow UI") takes the admin and the generated
    password, in a real headless Chromium, lists every example DAG, shows the line a task printed in its
    log view, and a broken DAG file saved on the host in the import-error dialog."""
    url = f"http://127.0.0.1:{stack.port}"
    with chromium(tmp_path) as browser:
        browser.open(f"{url}/dags")
        browser.log_in("admin", stack.secret_values()[rules.ADMIN_PASSWORD])
        browser.wait_for_dag_list(EXAMPLE_DAGS)

        browser.open_task_log(url, DAG_ID, finished_run["dag_run_id"], "load")
        browser.wait_for_log_line("Loaded 3 orders, total 1236.70")

        broken = stack.workspace / "dags" / "broken_in_container.py"
        broken.write_text("from airflow.sdk import dag\n\nimport a_module_nobody_installed\n")
        try:
            wait_until(
                lambda: "broken_in_container.py" in stack.api.import_errors(), 120, what="the import error"
            )
            browser.open(f"{url}/dags")
            browser.open_import_errors()
            browser.wait_for(
                "//*[@role='dialog']//*[contains(normalize-space(), 'broken_in_container.py')]", "the file"
            )
        finally:
            broken.unlink()


def test_task_log_is_readable_through_the_api(stack: Stack, finished_run: dict):
    """The log of the run's last task, fetched through the API, holds what the task printed."""
    assert "Loaded 3 orders, total 1236.70" in stack.api.task_log(DAG_ID, finished_run["dag_run_id"], "load")


def test_connection_password_is_encrypted_at_rest(stack: Stack, connection_password: str):
    """The connection's password is stored encrypted with the Fernet key from .env, not in plain text."""
    result = stack.compose(
        "exec", "-T", "postgres", "psql", "-U", "airflow", "-d", "airflow", "-tAc",
        f"select is_encrypted, password from connection where conn_id = '{CONNECTION_ID}'",
    )  # fmt: skip
    encrypted, stored = result.stdout.strip().split("|", 1)
    assert encrypted == "t"
    assert connection_password not in stored


def test_ports_are_published_on_loopback_only(stack: Stack):
    """Only the api-server publishes a port, on 127.0.0.1; Postgres is not published at all."""
    assert stack.published_ports() == {"airflow-api-server": [("8080/tcp", "127.0.0.1", str(stack.port))]}


# How the stack is recreated, in this order: stopped and started again, then the dev container rebuilt
# (VS Code's "Rebuild Container": the image is built again and the editor's container replaced).
RESTARTS = {
    "compose-down-then-up": lambda stack: (stack.compose("down", timeout=180), stack.devcontainer("up")),
    "rebuild-dev-container": lambda stack: stack.devcontainer("up", "--remove-existing-container"),
}


@pytest.mark.parametrize("restart", RESTARTS)
def test_state_survives_recreating_the_stack(
    stack: Stack, env_after_create: bytes, finished_run: dict, connection_password: str, restart: str
):
    """After the stack is recreated, the password decrypts, the run is in the history, .env is unchanged."""
    RESTARTS[restart](stack)
    stack.wait_healthy()
    assert stack.env_file() == env_after_create
    stack.token()  # a fresh login with the password in .env
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{finished_run['dag_run_id']}"
    status, body = stack.request("GET", path)
    assert (status, body.get("state")) == (200, "success"), body
    output = stack.exec("airflow", "connections", "get", CONNECTION_ID, "--output", "json").stdout
    assert connection_password in output


def test_no_secret_in_any_image(stack: Stack, engine: Engine):
    """No generated secret is in the history, environment or files of any image the stack runs."""
    values = stack.secret_values().values()
    images = {container["Image"] for container in stack.containers()}
    assert len(images) >= 2  # postgres and the Airflow image (and the editor's derived image)
    for image in images:
        history = engine.docker("image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
        config = engine.docker("image", "inspect", "--format", "{{json .Config}}", image).stdout
        files = engine.docker(
            "run", "--rm", "--user", "0", "--entrypoint", "sh", image, "-c",
            "cat /etc/environment 2>/dev/null; find /opt /home /root /tmp /etc -type f -size -1M "
            "-exec cat {} + 2>/dev/null; true",
            timeout=300,
        ).stdout  # fmt: skip
        for value in values:
            assert value not in history, f"a secret is in the history of {image}"
            assert value not in config, f"a secret is in the configuration of {image}"
            assert value not in files, f"a secret is in a file of {image}"


def test_local_settings_file_is_read_in_the_editor(stack: Stack):
    """airflow_settings.yaml, made by airflow-init from the example and edited on the host, is what
    `airflow variables get` / `connections get` in the editor's terminal answer, without a restart."""
    settings = stack.workspace / "airflow_settings.yaml"
    original = settings.read_bytes()
    try:
        settings.write_text(
            "connections:\n  container_api: http://api.example.com:8443\n"
            "variables:\n  container_greeting: hello from the host\n"
        )
        variable = stack.exec("airflow", "variables", "get", "container_greeting")
        assert variable.stdout.strip() == "hello from the host", variable.stdout + variable.stderr
        connection = stack.exec("airflow", "connections", "get", "container_api", "-o", "yaml")
        assert "get_uri: http://api.example.com:8443" in connection.stdout, (
            connection.stdout + connection.stderr
        )
    finally:
        settings.write_bytes(original)


DEBUG_RUNS_PER_DAG = 2


def test_f5_beside_the_running_stack_never_runs_a_task_twice(stack: Stack):
    """F5's command line in the editor, repeated on an unpaused mapped DAG and a deferrable one that the
    stack runs at the same time: every task instance of every run ran once (last: it adds DAG files)."""
    debug_runs.write_dags(stack.workspace)
    try:
        stack.wait_for_dags(tuple(debug_runs.DAGS))
        stack_runs = {dag_id: [stack.api.trigger(dag_id)] for dag_id in debug_runs.DAGS}
        for _ in range(DEBUG_RUNS_PER_DAG):
            for dag_id in debug_runs.DAGS:
                result = stack.exec(*F5_COMMAND, f"dags/{dag_id}.py", timeout=300, check=False)
                assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
                stack_runs[dag_id].append(stack.api.trigger(dag_id))
        for dag_id, run_ids in stack_runs.items():
            for run_id in run_ids:
                assert stack.wait_for_run(dag_id, run_id)["state"] == "success", f"{dag_id} {run_id}"
        debug_runs.check_each_ran_once(stack.api, stack.workspace, DEBUG_RUNS_PER_DAG)
    finally:
        stack.exec("python", "-m", "localflow.debugging.warm_runner", "--stop", check=False)
        for dag_id in debug_runs.DAGS:
            (stack.workspace / "dags" / f"{dag_id}.py").unlink(missing_ok=True)
