"""The README's commands on a machine with nothing but Python: the venv is built from the lock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localflow import bootstrap
from localflow.config import settings
from testkit.environment import REPO

COPIED = (
    "localflow", "requirements.txt", "requirements-dev.txt", "requirements-s3.txt", "requirements-user.in",
    "requirements-user.txt",
    ".env.example", "pyproject.toml",
)  # fmt: skip


def base_python() -> str:
    """The interpreter the venv was made from: plain Python, no Airflow."""
    return getattr(sys, "_base_executable", None) or shutil.which("python3")


def run_localflow(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    """``python3 -m localflow ARGS`` in ``workspace`` with a plain Python and a clean environment."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "LOCALFLOW", "VIRTUAL_ENV"))
    }
    return subprocess.run(
        [base_python(), "-m", "localflow", *args],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_plain_python_has_no_airflow():
    """The premise: the base interpreter cannot import Airflow (else this test proves nothing)."""
    result = subprocess.run([base_python(), "-c", "import airflow"], capture_output=True, check=False)
    assert result.returncode != 0


def test_first_command_builds_the_venv_from_the_lock(tmp_path: Path):
    """On a fresh copy a command builds .venv with the locked Airflow and runs in it; the next is instant."""
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tmp_path / name)

    first = run_localflow(tmp_path, "secrets")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "installing the locked packages" in first.stdout
    assert (tmp_path / ".env").exists()
    python = tmp_path / ".venv" / "bin" / "python"
    version = subprocess.run(
        [python, "-c", "import airflow, debugpy, psycopg2; print(airflow.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert version.stdout.strip() == "3.3.2", version.stderr
    assert (tmp_path / ".venv" / bootstrap.STAMP.name).exists()

    started = time.monotonic()
    second = run_localflow(tmp_path, "secrets")
    assert second.returncode == 0, second.stderr
    assert "installing" not in second.stdout
    assert time.monotonic() - started < 30


# .env of the workspace (None: none yet), the shell's LOCALFLOW_REMOTE_LOGS, whether the S3 lock is synced
SWITCH_CASES = (
    (None, None, False),
    ("AIRFLOW__API__PORT=8080\n", None, False),
    ("# LOCALFLOW_REMOTE_LOGS=s3://localflow-logs/logs\n", None, False),
    ("LOCALFLOW_REMOTE_LOGS=s3://localflow-logs/logs\n", None, True),
    ("export LOCALFLOW_REMOTE_LOGS='s3://b-logs/x'  # mine\n", None, True),
    (None, "s3://localflow-logs/logs", True),
    ("LOCALFLOW_REMOTE_LOGS=\n", "s3://localflow-logs/logs", False),
)


@pytest.mark.parametrize(
    ("env_file", "shell", "synced"),
    SWITCH_CASES,
    ids=["fresh", "other-settings", "commented", "on", "export-quoted", "shell", "env-wins"],
)
def test_s3_lock_follows_the_switch(tmp_path: Path, env_file: str | None, shell, synced: bool):
    """The venv gets requirements-s3.txt exactly while the switch is on, as `localflow` reads it (.env once)."""
    if env_file is not None:
        (tmp_path / ".env").write_text(env_file)
    base = {} if shell is None else {"LOCALFLOW_REMOTE_LOGS": shell}
    env = settings.native_environment(tmp_path, base=base)
    expected = (*bootstrap.LOCK_FILES, "requirements-s3.txt") if synced else bootstrap.LOCK_FILES
    assert bootstrap.lock_files(env) == (*expected, bootstrap.USER_LOCK)
