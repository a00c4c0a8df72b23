"""What every start prepares: ``.airflow/`` (database, task logs) is private; airflow_settings.yaml exists."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from localflow.config import settings
from localflow.secrets import prepare
from testkit.native_stack import make_workspace, run_localflow, stack_environment

# (what .airflow/ is before, the command): a fresh clone, and a workspace from before this rule
CASES = [(None, "secrets"), (0o755, "secrets"), (None, "dag-test")]


@pytest.mark.parametrize(
    ("mode_before", "command"), CASES, ids=["fresh-secrets", "old-0755-secrets", "fresh-f5"]
)
def test_state_folder_is_private(tmp_path: Path, mode_before: int | None, command: str):
    """Other local users cannot list or read the run data, whichever command came first."""
    workspace = make_workspace(tmp_path / "workspace")
    state = workspace / ".airflow"
    if mode_before is not None:
        state.mkdir()
        state.chmod(mode_before)
    args = [command, str(workspace / "dags" / "example_etl.py")] if command == "dag-test" else [command]
    result = run_localflow(stack_environment(workspace, None), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


# (what is at airflow_settings.yaml before, what it holds after): made once, never written over or through
SETTINGS_CASES = [
    ("missing", "example"),
    ("file", "mine"),
    ("link", "mine"),  # a dotfiles manager's link: its target is left alone
    ("dangling-link", None),  # not created through the link either
]


@pytest.mark.parametrize(("before", "after"), SETTINGS_CASES, ids=[case[0] for case in SETTINGS_CASES])
def test_settings_file_is_made_from_the_example_once(tmp_path: Path, before: str, after: str | None):
    """``secrets`` (every start) copies the example to airflow_settings.yaml, mode 0600, only if nothing is there."""
    workspace = make_workspace(tmp_path / "workspace")
    path = workspace / settings.SETTINGS_FILE_NAME
    target = tmp_path / "dotfiles" / "airflow_settings.yaml"
    target.parent.mkdir()
    if before == "file":
        path.write_text("mine")
    elif before in {"link", "dangling-link"}:
        if before == "link":
            target.write_text("mine")
        path.symlink_to(target)
    for _ in range(2):
        prepare.ensure_settings_file(workspace)
    example = (workspace / settings.SETTINGS_EXAMPLE_NAME).read_text()
    assert (path.read_text() if path.exists() else None) == {"example": example}.get(after, after)
    assert target.exists() == (before == "link")
    if before == "missing":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
