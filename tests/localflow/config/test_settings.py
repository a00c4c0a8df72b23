"""A user's shell meets the workspace: what the workspace owns is its own, .env wins, the rest applies.

Many users ``export AIRFLOW_HOME=~/airflow`` (VS Code inherits it). Every command must still run on the
workspace's home, database, folders and secrets, and say in one line which exported variables it ignores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from localflow.config import settings
from localflow.secrets import rules
from localflow.secrets.store import load
from testkit.environment import EXAMPLE_DAGS, REPO, free_port
from testkit.native_stack import make_workspace, start_up

ENV_KEY = "a" * 43 + "="  # the Fernet key in the workspace's .env
STALE_KEY = "b" * 43 + "="  # another Airflow's key, still exported by the shell
ELSEWHERE = "/home/someone/airflow"
# An airflow.cfg of another Airflow: its database and DAGs folder must not be used. Its logging level is
# one Airflow refuses, so that reading the file at all fails.
OTHER_CONFIG = (
    "[database]\nsql_alchemy_conn = sqlite:////nonexistent/other.db\n"
    "[core]\ndags_folder = /nonexistent\n"
    "[logging]\nlogging_level = NOT-A-LEVEL\n"
)

# id, exported by the shell, lines of .env, expected values in the environment ({ws}: the workspace,
# None: unset), the shell's variables the one-line notice names
CASES = (
    ("home", {"AIRFLOW_HOME": ELSEWHERE}, "", {"AIRFLOW_HOME": "{ws}/.airflow"}, ["AIRFLOW_HOME"]),
    (
        "config-file",
        {"AIRFLOW_CONFIG": f"{ELSEWHERE}/airflow.cfg"},
        "",
        {"AIRFLOW_CONFIG": "{ws}/.airflow/airflow.cfg"},
        ["AIRFLOW_CONFIG"],
    ),
    (
        "database",
        {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://me@db.invalid/other"},
        "",
        {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:///{ws}/.airflow/airflow.db"},
        ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
    ),
    (
        "dags-folder",
        {"AIRFLOW__CORE__DAGS_FOLDER": f"{ELSEWHERE}/dags"},
        "",
        {"AIRFLOW__CORE__DAGS_FOLDER": "{ws}/dags"},
        ["AIRFLOW__CORE__DAGS_FOLDER"],
    ),
    (
        "stale-fernet-key",
        {rules.FERNET_KEY: STALE_KEY},
        f"{rules.FERNET_KEY}={ENV_KEY}\n",
        {rules.FERNET_KEY: ENV_KEY},
        [rules.FERNET_KEY],
    ),
    (
        "fernet-key-before-env-exists",
        {rules.FERNET_KEY: STALE_KEY},
        None,
        {rules.FERNET_KEY: None},
        [rules.FERNET_KEY],
    ),
    (
        "fernet-key-command",
        {f"{rules.FERNET_KEY}_CMD": "cat ~/airflow/fernet.key"},
        f"{rules.FERNET_KEY}={ENV_KEY}\n",
        {rules.FERNET_KEY: ENV_KEY, f"{rules.FERNET_KEY}_CMD": None},
        [f"{rules.FERNET_KEY}_CMD"],
    ),
    (
        "harmless-settings-apply",
        {"AIRFLOW__CORE__LOAD_EXAMPLES": "True", "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Europe/Berlin"},
        "",
        {"AIRFLOW__CORE__LOAD_EXAMPLES": "True", "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Europe/Berlin"},
        [],
    ),
    (
        "env-file-beats-shell",
        {"AIRFLOW__API__PORT": "9090"},
        "AIRFLOW__API__PORT=8181\n",
        {
            "AIRFLOW__API__PORT": "8181",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://127.0.0.1:8181/execution/",
        },
        ["AIRFLOW__API__PORT"],
    ),
    (
        "env-file-database",
        {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://me@db.invalid/other"},
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://postgres@127.0.0.1:5432/mine\n",
        {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://postgres@127.0.0.1:5432/mine"},
        ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
    ),
    ("same-home-as-ours", {"AIRFLOW_HOME": "{ws}/.airflow"}, "", {"AIRFLOW_HOME": "{ws}/.airflow"}, []),
    (
        "caller-environment-wins",
        {settings.CALLER_ENV: "1", "AIRFLOW_HOME": "/tmp/test-home"},
        f"{rules.FERNET_KEY}={ENV_KEY}\n",
        {"AIRFLOW_HOME": "/tmp/test-home", "AIRFLOW_CONFIG": "/tmp/test-home/airflow.cfg"},
        [],
    ),
)


@pytest.mark.parametrize(
    ("shell", "env_file", "expected", "ignored"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_shell_meets_workspace(tmp_path: Path, shell, env_file, expected, ignored):
    """The workspace's own settings and .env win over the shell; one line names what was ignored."""
    if env_file is not None:
        (tmp_path / ".env").write_text(env_file)
    shell = {name: value.format(ws=tmp_path) for name, value in shell.items()}
    env = settings.native_environment(tmp_path, base=shell)
    assert {name: env.get(name) for name in expected} == {
        name: value if value is None else value.format(ws=tmp_path) for name, value in expected.items()
    }
    assert settings.ignored_from_shell(env, shell) == ignored
    if ignored:
        assert settings.shell_notice(ignored) == (
            f"localflow: ignoring {', '.join(ignored)} from your shell: this workspace sets its own "
            "(see docs/safety.md#your-shell)"
        )


def test_the_secrets_are_the_workspaces():
    """Every generated secret is a setting the shell cannot override."""
    assert all(settings.workspace_owns(secret.name) for secret in rules.SECRETS)


# --- end to end: `python -m localflow` on a fresh copy of the workspace, with a user's shell -----------


def user_shell(workspace: Path, elsewhere: Path) -> dict[str, str]:
    """A shell set up for another Airflow in ``elsewhere`` (home, config file, key), on a fresh clone."""
    elsewhere.mkdir()
    (elsewhere / "airflow.cfg").write_text(OTHER_CONFIG)
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(elsewhere.parent),
        "LANG": "C.UTF-8",
        "LOCALFLOW_WORKSPACE": str(workspace),
        "LOCALFLOW_WARM_RUNNER_IDLE": "30",
        "AIRFLOW_HOME": str(elsewhere),
        "AIRFLOW_CONFIG": str(elsewhere / "airflow.cfg"),
        rules.FERNET_KEY: STALE_KEY,
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Europe/Berlin",
    }


def run_python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``python ARGS`` with the workspace's interpreter, from the repository (as VS Code runs it)."""
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


NOTICE = settings.shell_notice(["AIRFLOW_CONFIG", "AIRFLOW_HOME", rules.FERNET_KEY])


def notices(result: subprocess.CompletedProcess) -> list[str]:
    """The notice lines the command printed."""
    return [line for line in result.stderr.splitlines() if "from your shell" in line]


def test_commands_with_another_airflow_in_the_shell(tmp_path: Path):
    """F5 on a fresh clone, the warm runner and Airflow's CLI use the workspace alone; the shell's home is untouched."""
    from localflow.debugging.warm_runner import client

    workspace = make_workspace(tmp_path / "workspace")
    elsewhere = tmp_path / "airflow"
    shell = user_shell(workspace, elsewhere)
    dag_file = str(workspace / "dags" / "example_etl.py")

    first = run_python(shell, "-m", "localflow", "dag-test", dag_file)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "example_etl finished: success" in first.stdout
    assert notices(first) == [NOTICE]
    assert load(workspace)[rules.FERNET_KEY] != STALE_KEY
    assert (workspace / ".airflow" / "airflow.db").exists()

    try:
        for home in (str(elsewhere), str(tmp_path / "yet-another")):  # an ignored value picks no new runner
            warm = run_python(
                {**shell, "AIRFLOW_HOME": home}, "-m", "localflow.debugging.warm_runner", "-m", "localflow",
                "dag-test", dag_file,
            )  # fmt: skip
            assert warm.returncode == 0, warm.stdout + warm.stderr
            assert "example_etl finished: success" in warm.stdout
            assert len(notices(warm)) == 1, warm.stderr
            assert "restarting the warm debug runner" not in warm.stderr
    finally:
        client.stop(shell, str(REPO))

    listed = run_python(shell, "-m", "localflow", "airflow", "dags", "list", "--local", "-o", "json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    dags = json.loads(listed.stdout.strip().splitlines()[-1])  # after Airflow's warnings
    assert sorted(dag["dag_id"] for dag in dags) == list(EXAMPLE_DAGS)
    assert {Path(dag["fileloc"]).parent for dag in dags} == {workspace / "dags"}
    assert notices(listed) == [NOTICE]
    database = run_python(
        shell, "-m", "localflow", "airflow", "config", "get-value", "database", "sql_alchemy_conn"
    )
    assert database.stdout.strip() == f"sqlite:///{workspace}/.airflow/airflow.db"

    assert [path.name for path in elsewhere.iterdir()] == ["airflow.cfg"]
    assert (elsewhere / "airflow.cfg").read_text() == OTHER_CONFIG


def test_test_command_ignores_the_shell(tmp_path: Path):
    """`python -m localflow test` with another Airflow's home, database and key exported passes as without."""
    elsewhere = tmp_path / "airflow"
    shell = user_shell(tmp_path / "unused", elsewhere)
    del shell["LOCALFLOW_WORKSPACE"]
    shell["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = "postgresql+psycopg2://me@127.0.0.1:1/other"
    result = run_python(
        shell, "-m", "localflow", "test", "tests/dags/test_dag_integrity.py", "-q", "-p", "no:cacheprovider"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert notices(result) == [
        settings.shell_notice(
            ["AIRFLOW_CONFIG", "AIRFLOW_HOME", rules.FERNET_KEY, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        )
    ]
    assert [path.name for path in elsewhere.iterdir()] == ["airflow.cfg"]


@pytest.mark.stack
def test_up_with_another_airflow_in_the_shell(tmp_path: Path):
    """`up` runs on the workspace alone, says once (not in each component) what it ignored."""
    workspace = make_workspace(tmp_path / "workspace")
    elsewhere = tmp_path / "airflow"
    shell = {**user_shell(workspace, elsewhere), "AIRFLOW__API__PORT": str(free_port())}
    stack = start_up(workspace, shell)
    try:
        stack.wait_healthy()
        with stack.output_on_timeout():
            stack.api.wait_for_dags(EXAMPLE_DAGS, timeout=120)
    finally:
        stopped = stack.stop()
    assert stopped == 0, stack.output()
    assert [line for line in stack.output().splitlines() if "from your shell" in line] == [NOTICE]
    component_logs = list((workspace / ".airflow" / "logs" / "components").glob("*.log"))
    assert len(component_logs) == 5 and not any(
        "from your shell" in log.read_text() for log in component_logs
    )
    assert (workspace / ".airflow" / "airflow.db").exists()
    assert [path.name for path in elsewhere.iterdir()] == ["airflow.cfg"]


# Loaded by every Python process of the tree (PYTHONPATH): logs each process that opens the workspace's .env.
ENV_FILE_AUDIT = """
import os, sys

_ENV_FILE = os.path.join(os.environ["LOCALFLOW_WORKSPACE"], ".env")
_LOG = os.environ["ENV_FILE_AUDIT_LOG"]


def _audit(event, args):
    if event == "open" and args and isinstance(args[0], str) and args[0] == _ENV_FILE:
        with open(_LOG, "a") as log:
            log.write(" ".join(sys.argv[:3]) + "\\n")


sys.addaudithook(_audit)
"""


@pytest.mark.stack
def test_env_file_is_read_once_per_up(tmp_path: Path):
    """AIRFLOW__API__PORT goes from .env to the api-server, and the whole stack's process tree (the
    bootstrap, `up`, the supervisor, every component and the dag watcher) opens .env once."""
    from testkit.native_stack import run_localflow, stack_environment

    workspace = make_workspace(tmp_path / "workspace")
    env = stack_environment(workspace, None)
    port = env.pop("AIRFLOW__API__PORT")  # from .env alone
    assert run_localflow(env, "secrets").returncode == 0
    with (workspace / ".env").open("a") as env_file:
        env_file.write(f"AIRFLOW__API__PORT={port}\n")
    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "sitecustomize.py").write_text(ENV_FILE_AUDIT)
    log = tmp_path / "opened.log"
    env.update(PYTHONPATH=str(audit), ENV_FILE_AUDIT_LOG=str(log))
    stack = start_up(workspace, env)
    stack.env["AIRFLOW__API__PORT"] = port  # where the test looks for it; `up` was not told
    try:
        stack.wait_healthy()
    finally:
        stopped = stack.stop()
    assert stopped == 0, stack.output()
    assert log.read_text().splitlines() == [f"{REPO / 'localflow'}/__main__.py up"], stack.output()
