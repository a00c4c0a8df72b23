"""Your packages, as a user adds and removes them: ``python3 -m localflow add`` and ``remove`` on a fresh
copy of the workspace with a venv of its own, against the real PyPI (docs/packages.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from localflow import bootstrap
from testkit.environment import REPO
from testkit.native_stack import RunningStack, make_workspace, stack_environment
from tests.localflow.test_bootstrap import COPIED, run_localflow
from tests.test_requirements import pins

# Tiny, pure Python, no dependencies, and nothing the workspace's locks hold: it comes only from `add`.
PACKAGE = "cowsay"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the workspace whose first command built its own .venv (the user's is untouched)."""
    root = tmp_path_factory.mktemp("packages")
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (root / name).write_bytes(source.read_bytes())
    first = run_localflow(root, "secrets")
    assert first.returncode == 0, first.stdout + first.stderr
    return root


def files(workspace: Path) -> dict[str, bytes]:
    """The input, the user's lock and the workspace's locks, byte for byte."""
    names = (bootstrap.USER_INPUT, *bootstrap.LOCK_INPUTS)
    return {name: (workspace / name).read_bytes() for name in names if (workspace / name).exists()}


def imports(workspace: Path, module: str) -> bool:
    """Whether the workspace's venv imports ``module``."""
    python = workspace / ".venv" / "bin" / "python"
    return (
        subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False).returncode == 0
    )


def test_add_locks_and_installs_then_remove_takes_it_out(workspace: Path):
    """`add` pins the package in requirements-user.txt and installs it into .venv, the workspace's locks
    unchanged; `remove` takes it out of both files and the venv, back to the bytes before `add`."""
    before = files(workspace)
    assert PACKAGE not in {name for name, _ in pins(REPO / "requirements.txt")}
    assert not imports(workspace, PACKAGE)

    added = run_localflow(workspace, "add", PACKAGE)
    assert added.returncode == 0, added.stdout + added.stderr
    version = pins(workspace / bootstrap.USER_LOCK)[PACKAGE, ""]
    assert f"locked {PACKAGE}=={version}" in added.stdout
    assert PACKAGE in (workspace / bootstrap.USER_INPUT).read_text().splitlines()
    assert imports(workspace, PACKAGE)
    after = files(workspace)
    for lock in bootstrap.LOCK_INPUTS:
        if lock != bootstrap.USER_LOCK:
            assert after[lock] == before[lock], f"`add` changed the workspace's {lock}"

    removed = run_localflow(workspace, "remove", PACKAGE)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert f"removed {PACKAGE}" in removed.stdout
    assert not imports(workspace, PACKAGE)
    assert files(workspace) == before


# What is added, what the refusal names (a pin and the lock that holds it)
CONFLICTS = (
    ("apache-airflow==2.10.5", "apache-airflow==3.3.2 (requirements.txt)"),
    ("sqlalchemy<1.4", "(requirements.txt)"),
    ("ruff==0.1.0", "(requirements-dev.txt)"),
)


@pytest.mark.parametrize(("requirement", "named"), CONFLICTS, ids=[c[0] for c in CONFLICTS])
def test_a_conflict_with_airflows_pins_is_refused(workspace: Path, requirement: str, named: str):
    """A requirement that would move a pin of the workspace is refused in two lines naming the conflict
    and the pin, and every file is as it was."""
    before = files(workspace)
    result = run_localflow(workspace, "add", requirement)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert f"`add {requirement}` conflicts with the workspace's pins, so nothing was changed" in lines[0]
    assert named in lines[1], result.stderr
    assert "Traceback" not in result.stderr
    assert files(workspace) == before


def test_a_package_pypi_does_not_have_is_one_line(workspace: Path):
    """A misspelt name is said in one line, and nothing changes."""
    before = files(workspace)
    result = run_localflow(workspace, "add", "localflow-no-such-package-xyz")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "localflow: `add localflow-no-such-package-xyz`: no package localflow-no-such-package-xyz in the "
        "package registry (PyPI; a typo?); nothing was changed."
    ]
    assert files(workspace) == before


def test_an_unreachable_registry_is_one_line(workspace: Path, monkeypatch: pytest.MonkeyPatch):
    """No answer from the package index (here a closed port) is one line saying so, and nothing changes."""
    monkeypatch.setenv("UV_DEFAULT_INDEX", "http://127.0.0.1:9/simple")
    before = files(workspace)
    result = run_localflow(workspace, "add", PACKAGE)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"localflow: `add {PACKAGE}`: uv could not reach the package registry ("), (
        lines
    )
    assert "so nothing was changed" in lines[0]
    assert files(workspace) == before


def test_removing_the_workspaces_own_package_is_refused(workspace: Path):
    """`remove ruff` says ruff is the workspace's, not the user's, and changes nothing."""
    before = files(workspace)
    result = run_localflow(workspace, "remove", "ruff")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        "localflow: not in requirements-user.in: ruff (ruff: the workspace's own, in pyproject.toml); "
        "yours are: none. Nothing was changed."
    ]
    assert files(workspace) == before


def test_lock_keeps_a_hand_edit_and_refuses_a_conflict(workspace: Path):
    """A line added by hand to requirements-user.in is pinned by `lock --yours`, which syncs .venv; a
    conflicting one is refused with the same two lines, the lock as it was; plain `lock` (every lock) too."""
    source = workspace / bootstrap.USER_INPUT
    original = source.read_text()
    try:
        source.write_text(original + "apache-airflow==2.10.5\n")
        lock_before = (workspace / bootstrap.USER_LOCK).read_bytes()
        refused = run_localflow(workspace, "lock", "--yours")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "apache-airflow==3.3.2 (requirements.txt)" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 2, refused.stderr
        assert (workspace / bootstrap.USER_LOCK).read_bytes() == lock_before

        source.write_text(original + PACKAGE + "\n")
        locked = run_localflow(workspace, "lock", "--yours")
        assert locked.returncode == 0, locked.stdout + locked.stderr
        assert (PACKAGE, "") in pins(workspace / bootstrap.USER_LOCK)
        assert imports(workspace, PACKAGE), "`lock` did not sync .venv"
    finally:
        source.write_text(original)
        assert run_localflow(workspace, "lock").returncode == 0
    assert not imports(workspace, PACKAGE)


USES_PACKAGE = f'''"""A task that imports {PACKAGE}, which only `add` installs."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["test"],
     default_args={{"owner": "tests", "retries": 0}})
def uses_package():
    @task
    def say() -> str:
        import {PACKAGE}

        return {PACKAGE}.get_output_string("cow", "hello")

    say()


uses_package()
'''


@pytest.mark.stack
def test_a_running_stack_runs_an_added_package_in_its_next_task(workspace: Path):
    """With `up` running, a task that imports a package fails; after `add` (which says to restart for a
    provider) the next run of it succeeds, with no restart."""
    assert not imports(workspace, PACKAGE)
    make_workspace(workspace)
    (workspace / "dags" / "uses_package.py").write_text(USES_PACKAGE)
    env = stack_environment(workspace, None)
    output_path = workspace / "up.out"
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            [workspace / ".venv" / "bin" / "python", "-m", "localflow", "up"],
            cwd=workspace,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = RunningStack(process, env, output_path, workspace)
    try:
        stack.wait_healthy()
        assert stack.wait_for_run("uses_package", stack.trigger("uses_package")) == "failed"

        shell = {
            key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "LOCALFLOW"))
        }
        added = (
            subprocess.run(  # from the user's shell (its proxy and certificates), on the stack's workspace
                [workspace / ".venv" / "bin" / "python", "-m", "localflow", "add", PACKAGE],
                cwd=workspace,
                env={**shell, **env},
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        )
        assert added.returncode == 0, added.stdout + added.stderr
        assert f"the stack of this workspace runs (PID {process.pid})" in added.stdout, added.stdout

        assert stack.wait_for_run("uses_package", stack.trigger("uses_package")) == "success"
    finally:
        stack.stop()
        removed = run_localflow(workspace, "remove", PACKAGE)
        assert removed.returncode == 0 or "not in requirements-user.in" in removed.stderr, removed.stderr
