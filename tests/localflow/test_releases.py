"""The Airflow release chosen in .env: the values refused or accepted, the switch, the database it refuses.

The tests marked ``releases`` build venvs of other releases from PyPI (slow: ``-m "not releases"`` leaves
them out).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from localflow import bootstrap, releases
from localflow.config import registry, settings
from localflow.debugging.warm_runner import client as warm_runner
from localflow.polling import wait_until
from testkit import releases as testkit_releases
from testkit.dap import STOP_TIMEOUT, DapClient, check_stop, launch_configuration, line_of
from testkit.environment import REPO
from testkit.native_stack import (
    RunningStack,
    dag_source,
    make_workspace,
    run_localflow,
    stack_environment,
    start_up,
)
from tests.localflow.test_bad_input import VALID_ENV
from tests.localflow.test_bootstrap import COPIED
from tests.localflow.test_bootstrap import run_localflow as run_plain

SETTING = releases.SETTING


@pytest.mark.parametrize(
    ("value", "release"),
    [(None, "3.3.2"), ("", "3.3.2"), (" 3.1.8 ", "3.1.8"), ("3.0.6", "3.0.6"), ("3.1.7", "3.1.7")],
)
def test_accepted_releases(value, release: str):
    """Unset or empty is the locked release; a supported one or another 3.x patch is taken as written."""
    env = {} if value is None else {SETTING: value}
    assert releases.chosen(env) == release
    assert releases.untested(release) is (release == "3.1.7")


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (
            "2.10.5",
            "Airflow 2 is not supported (the workspace is for Airflow 3); the oldest supported release is 3.0.6",
        ),
        ("3.1", "is not a release: write MAJOR.MINOR.PATCH, one of 3.0.6, 3.1.8, 3.2.2, 3.3.2"),
        ("latest", "is not a release"),
        ("3.1.8rc1", "is not a release"),
        ("4.0.0", "Airflow 4 is not supported yet; choose one of 3.0.6, 3.1.8, 3.2.2, 3.3.2"),
    ],
)
def test_refused_releases(value: str, said: str):
    """What cannot run is refused, the message naming what to write instead."""
    with pytest.raises(releases.ReleaseError, match=re.escape(said)):
        releases.chosen({SETTING: value})


def test_a_release_is_refused_on_a_python_it_does_not_install_on():
    """Airflow 3.0.6 (SQLAlchemy 1.4) has no wheels for Python 3.13: one line saying so, not a failed build."""
    refusal = releases.python_refusal("3.0.6", (3, 13))
    assert refusal and "Airflow 3.0.6 installs on Python 3.10 to 3.12, this is 3.13" in refusal
    assert releases.python_refusal("3.0.6", (3, 12)) is None
    assert all(releases.python_refusal(release, (3, 13)) is None for release in ("3.1.8", "3.2.2", "3.3.2"))


def test_one_default_release_everywhere():
    """The locked release is pyproject.toml's pin, requirements.txt's, the registry's default, the newest."""
    assert f'"apache-airflow[postgres,celery]=={releases.LOCKED}"' in (REPO / "pyproject.toml").read_text()
    assert f"\napache-airflow=={releases.LOCKED}\n" in (REPO / "requirements.txt").read_text()
    assert registry.BY_NAME[SETTING].default == releases.LOCKED == releases.SUPPORTED[-1]
    assert all(release in registry.BY_NAME[SETTING].help for release in releases.SUPPORTED)
    assert releases.AIRFLOW_REQUIREMENT in (REPO / "pyproject.toml").read_text()


@pytest.mark.parametrize("release", [r for r in releases.SUPPORTED if r != releases.LOCKED])
def test_each_supported_release_has_its_locks(release: str):
    """Each other supported release's locks are committed and pin it: a switch needs no resolve."""
    folder = REPO / releases.lock_dir(release)
    assert (folder / releases.OVERRIDES).read_text() == releases.overrides_text(release)
    for name in bootstrap.RELEASE_LOCKS:
        text = (folder / name).read_text()
        assert f"\napache-airflow=={release}" in text or name == "requirements-dev.txt", name
    env = {SETTING: release, "LOCALFLOW_REMOTE_LOGS": "s3://b/l"}
    workspace_locks = tuple(releases.lock_path(release, n) for n in bootstrap.RELEASE_LOCKS)
    assert bootstrap.lock_files(env) == (
        *workspace_locks,
        bootstrap.USER_LOCK,
    )  # your packages: every release
    assert bootstrap.lock_files({}) == (*bootstrap.LOCK_FILES, bootstrap.USER_LOCK)  # the default path


def linked_copy(root: Path) -> Path:
    """A copy of the workspace whose .venv is the checkout's own (for commands refused before any sync)."""
    for name in (*COPIED, "requirements-s3.txt", "locks"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    (root / ".venv").symlink_to(REPO / ".venv")
    return root


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("2.10.5", "the oldest supported release is 3.0.6."),
        ("3.1", "is not a release: write MAJOR.MINOR.PATCH, one of 3.0.6, 3.1.8, 3.2.2, 3.3.2."),
    ],
)
def test_the_command_line_refuses_in_one_line(tmp_path: Path, value: str, said: str):
    """`python3 -m localflow secrets` with a release it cannot run: one line, exit 1, .env and .venv as
    they were."""
    workspace = linked_copy(tmp_path)
    env_text = VALID_ENV + f"{SETTING}={value}\n"
    (workspace / ".env").write_text(env_text)
    stamp = bootstrap.STAMP.read_bytes()
    result = run_plain(workspace, "secrets")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"localflow: {SETTING}="), result.stderr
    assert lines[-1].endswith(said), result.stderr
    assert "Traceback" not in result.stderr
    assert (workspace / ".env").read_text() == env_text
    assert bootstrap.STAMP.read_bytes() == stamp


def test_the_venvs_own_interpreter_says_another_release_and_refuses_a_bad_one(tmp_path: Path):
    """Run with .venv's interpreter (F5, the tests), nothing is synced: a release other than the installed
    one is a warning naming the command that installs it; one it cannot run is refused as by the bootstrap."""
    workspace = make_workspace(tmp_path)
    (workspace / ".env").write_text(VALID_ENV)
    (workspace / ".env").chmod(0o600)
    other = run_localflow(stack_environment(workspace, None, **{SETTING: "3.1.8"}), "secrets")
    assert other.returncode == 0, other.stderr
    assert (
        f"localflow: warning: Airflow 3.3.2 is installed but {SETTING} chooses 3.1.8; `python3 -m localflow "
        "secrets` (any command run with python3) installs it." in other.stderr.splitlines()
    )
    same = run_localflow(stack_environment(workspace, None), "secrets")
    assert same.returncode == 0 and "installed but" not in same.stderr, same.stderr
    bad = run_localflow(stack_environment(workspace, None, **{SETTING: "2.10.5"}), "secrets")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines()[-1].endswith("the oldest supported release is 3.0.6."), bad.stderr
    assert (workspace / ".env").read_text() == VALID_ENV


def digest(database: Path) -> str:
    """What the SQLite database holds: its schema and rows (SQLite may rewrite a page header on a read)."""
    connection = sqlite3.connect(database)
    try:
        return hashlib.sha256("\n".join(connection.iterdump()).encode()).hexdigest()
    finally:
        connection.close()


def test_a_database_newer_than_the_release_is_refused_untouched(tmp_path: Path):
    """A database at a revision the installed Airflow does not know (a newer one migrated it): `up` and
    `dag-test` say so in one line, naming the way out, and change nothing of it or of .env."""
    workspace = make_workspace(tmp_path)
    (workspace / ".env").write_text(VALID_ENV)
    (workspace / ".env").chmod(0o600)
    env = stack_environment(workspace, None)
    migrated = run_localflow(env, "airflow", "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    database = workspace / ".airflow" / "airflow.db"
    connection = sqlite3.connect(database)  # as the next release would leave it
    connection.execute("UPDATE alembic_version SET version_num = 'a0b1c2d3e4f5'")
    connection.commit()
    connection.close()
    before = digest(database), (workspace / ".env").read_text()
    for command in (["up"], ["dag-test", str(workspace / "dags" / "example_etl.py")]):
        result = run_localflow(env, *command)
        assert result.returncode == 1, result.stdout + result.stderr
        line = result.stderr.strip().splitlines()[-1]
        assert line.startswith(
            "localflow: the metadata database is at revision a0b1c2d3e4f5, which Airflow 3.3.2"
        ), line
        assert "airflow db downgrade --to-revision" in line and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in line
        assert (digest(database), (workspace / ".env").read_text()) == before, command


def airflow_version(workspace: Path) -> str:
    result = subprocess.run(
        [workspace / ".venv" / "bin" / "python", "-c", "import airflow; print(airflow.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


@pytest.mark.releases
def test_switch_to_an_older_release_and_back(tmp_path: Path):
    """A fresh copy on 3.3.2 with a migrated database; LOCALFLOW_AIRFLOW_VERSION=3.1.8 rebuilds .venv with
    3.1.8, whose dag-test refuses the newer database untouched; a fresh database migrates to 3.1.8's head;
    removing the line brings 3.3.2 back, and dag-test runs on the first database. .env survives it all."""
    workspace = tmp_path / "workspace"
    for name in (*COPIED, "requirements-s3.txt", "locks", "dags", "plugins", "airflow_settings.example.yaml"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, workspace / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, workspace / name)
    for command in (["secrets"], ["airflow", "db", "migrate"]):
        first = run_plain(workspace, *command)
        assert first.returncode == 0, first.stdout + first.stderr
    assert airflow_version(workspace) == "3.3.2"
    secrets = (workspace / ".env").read_text()
    database = workspace / ".airflow" / "airflow.db"
    migrated = digest(database)

    (workspace / ".env").write_text(secrets + f"{SETTING}=3.1.8\n")
    refused = run_plain(workspace, "dag-test", "dags/example_etl.py")
    assert "installing the locked packages of Airflow 3.1.8" in refused.stdout, (
        refused.stdout + refused.stderr
    )
    assert airflow_version(workspace) == "3.1.8"
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "does not run on Airflow" not in refused.stderr  # 3.1.8 runs (RUNS_ON)
    line = refused.stderr.strip().splitlines()[-1]
    assert "which Airflow 3.1.8 does not know" in line and "--to-revision 509b94a1042d" in line, line
    assert digest(database) == migrated

    database.rename(database.with_suffix(".db.3.3.2"))  # the way out the line names: another database
    ran = run_plain(workspace, "airflow", "db", "migrate")  # dag-test itself does not run on 3.1.8 yet
    assert ran.returncode == 0, ran.stdout + ran.stderr
    connection = sqlite3.connect(database)
    assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("509b94a1042d",)]
    connection.close()
    assert (workspace / ".env").read_text() == secrets + f"{SETTING}=3.1.8\n"

    database.with_suffix(".db.3.3.2").replace(database)
    (workspace / ".env").write_text(secrets)
    back = run_plain(workspace, "dag-test", "dags/example_etl.py")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "installing the locked packages ..." in back.stdout
    assert airflow_version(workspace) == "3.3.2"
    assert (workspace / ".env").read_text() == secrets


@pytest.mark.releases
def test_an_untested_patch_is_locked_once_and_said(tmp_path: Path):
    """Another 3.x patch (3.1.7): one line says it is untested; its locks are compiled into locks/ once."""
    workspace = linked_copy(tmp_path)
    (workspace / ".venv").unlink()  # a venv of its own, which the bootstrap builds: this one changes
    (workspace / ".env").write_text(VALID_ENV + f"{SETTING}=3.1.7\n")
    result = run_plain(workspace, "secrets")
    assert result.returncode == 0, result.stdout + result.stderr
    assert releases.untested_notice("3.1.7") in result.stderr
    assert "locking Airflow 3.1.7 into locks/airflow-3.1.7/ (once)" in result.stdout
    assert (
        "\napache-airflow==3.1.7\n"
        in (workspace / "locks" / "airflow-3.1.7" / "requirements.txt").read_text()
    )
    assert airflow_version(workspace) == "3.1.7"
    again = run_plain(workspace, "secrets")
    assert again.returncode == 0 and "locking" not in again.stdout and "installing" not in again.stdout


# installed release, whether up / dag-test / init say they do not run on it yet
READINESS_CASES = (("3.3.2", False), (None, False), ("3.1.8", False), ("3.2.2", False), ("3.0.6", True))


@pytest.mark.parametrize(("installed", "said"), READINESS_CASES)
def test_a_release_the_stack_does_not_run_on_yet_is_said(installed, said: bool):
    """On a release where `up` and F5 do not run yet, one line says so and how to go back, before they fail."""
    line = releases.not_running_yet(installed, "up")
    assert (line is not None) is said
    if said:
        assert f"Airflow {installed}" in line and "docs/releases.md" in line and "\n" not in line


# --- The other releases the workspace runs on (RUNS_ON): dag-test, F5 and one stack on each ------------

OLDER_RUNNING = sorted(releases.RUNS_ON - {releases.LOCKED})
# Each example DAG and its outcome on the default release: the same on every release it runs on.
EXAMPLES = {
    "example_etl.py": "success",
    "example_context.py": "success",
    "example_postgres_query.py": "success",
}
BREAKPOINT_TEXT = "print(f\"Loaded {summary['count']:.0f} orders"  # in example_etl's task `load`


class OnRelease(NamedTuple):
    """A fresh workspace chosen at ``release``, run with that release's venv and the checkout's code."""

    release: str
    python: Path
    workspace: Path
    env: dict[str, str]

    def localflow(self, *args: str) -> subprocess.CompletedProcess:
        return run_localflow(self.env, *args, python=self.python)


@pytest.fixture(scope="module", params=OLDER_RUNNING)
def on_release(request, tmp_path_factory) -> OnRelease:
    """The workspace, its venv built once per release (testkit/releases.py); SQLite, as a fresh clone."""
    release = request.param
    python = testkit_releases.release_venv(release)
    workspace = make_workspace(tmp_path_factory.mktemp(f"airflow-{release}"))
    (workspace / ".env").write_text(VALID_ENV)
    (workspace / ".env").chmod(0o600)
    env = stack_environment(
        workspace,
        None,
        **{SETTING: release},
        PYTHONPATH=str(REPO),
        # Only the watcher reparses a saved file: the dag-processor would not look again for an hour.
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="3600",
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="3600",
    )
    on = OnRelease(release, python, workspace, env)
    prepared = on.localflow("secrets")  # as a fresh clone's first command: airflow_settings.yaml too
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    return on


def said_nothing_missing(output: str, release: str) -> None:
    assert f"does not run on Airflow {release} yet" not in output, output
    assert "Traceback" not in output, output


@pytest.mark.releases
@pytest.mark.parametrize("stock", [False, True], ids=["fast", "stock"])
def test_dag_test_runs_the_examples(on_release: OnRelease, stock: bool):
    """Each example DAG ends as on the default release, with the fast path and with stock dag.test()
    (once: example_etl)."""
    examples = dict(list(EXAMPLES.items())[:1]) if stock else EXAMPLES
    for name, outcome in examples.items():
        result = on_release.localflow(
            "dag-test", str(on_release.workspace / "dags" / name), *(["--stock"] if stock else [])
        )
        output = result.stdout + result.stderr
        assert result.returncode == (0 if outcome == "success" else 1), output
        assert f"{Path(name).stem} finished: {outcome}" in result.stdout, output
        said_nothing_missing(output, on_release.release)


@pytest.mark.releases
def test_f5_stops_in_a_task(on_release: OnRelease, monkeypatch):
    """launch.json's "debug this DAG file" (the warm runner's) stops at a breakpoint in a task, as VS Code
    drives it, with the release's interpreter."""
    for name in set(os.environ) - set(settings.without_owned(os.environ)):  # the test session's Airflow home
        monkeypatch.delenv(name)
    dag_file = on_release.workspace / "dags" / "example_etl.py"
    config = launch_configuration(
        REPO / ".vscode" / "launch.json",
        "Airflow: debug this DAG file",
        workspace=REPO,
        file=dag_file,
        python=str(on_release.python),
    )
    config["env"] = on_release.env
    line = line_of(dag_file, BREAKPOINT_TEXT)
    try:
        with DapClient(python=str(on_release.python), log=on_release.workspace / "dap.log") as client:
            client.start(config, {dag_file: [line]})
            check_stop(client, dag_file, line, "summary", "{'count': 3.0, 'total': 1236.7}")
            assert client.wait_event("exited", STOP_TIMEOUT)["exitCode"] == 0
    finally:
        warm_runner.stop(on_release.env, str(REPO))


@pytest.fixture(scope="module")
def release_stack(on_release: OnRelease) -> Iterator[RunningStack]:
    """`up` on the release, with a DAG file the test edits."""
    dags = on_release.workspace / "dags"
    (dags / "edited.py").write_text(dag_source("edited", '"v0"'))
    stack = start_up(on_release.workspace, on_release.env, on_release.python)
    try:
        stack.wait_healthy()
        yield stack
    finally:
        stack.stop()


@pytest.mark.releases
def test_up_runs_a_dag_and_reparses_saves(on_release: OnRelease, release_stack: RunningStack):
    """The stack comes up healthy, a triggered run succeeds, an edited file and one whose parsing process
    dies reach the API through the watcher, and no component logged a traceback."""
    stack, dags = release_stack, on_release.workspace / "dags"
    run_id = stack.trigger("example_etl")
    assert stack.wait_for_run("example_etl", run_id) == "success"

    with stack.output_on_timeout():
        stack.api.wait_for_dags(["edited"], timeout=60)
        (dags / "edited.py").write_text(dag_source("edited", '"v1"'))
        wait_until(lambda: stack.api.task_ids("edited") == {"v1"}, 60, what="the edit reparsed")
        (dags / "dies.py").write_text(
            '"""An airflow DAG file that kills its parsing process."""\nimport os\n\nos._exit(1)\n'
        )
        wait_until(lambda: "dies.py" in stack.api.import_errors(), 60, what="the parse guard's import error")
    said_nothing_missing(stack.output(), on_release.release)
    for log in (on_release.workspace / ".airflow" / "logs" / "components").glob("*.log"):
        assert "Traceback" not in log.read_text(), f"{log.name}:\n{log.read_text()[-3000:]}"
