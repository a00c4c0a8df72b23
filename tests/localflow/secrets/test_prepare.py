"""What every start prepares: ``.airflow/`` (database, task logs) is private to the workspace's owner."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

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
