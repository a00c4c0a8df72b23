"""Airflow's own command line, run by this interpreter: the venv's Airflow natively, the image's in compose."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

from localflow.errors import LocalflowError


def airflow_command(*args: str) -> list[str]:
    """``airflow ARGS`` run by this interpreter, so it is the venv's (or the image's) Airflow."""
    return [sys.executable, "-m", "airflow", *args]


def run_airflow(args: list[str], env: Mapping[str, str], what: str) -> None:
    """Run an ``airflow`` CLI command; on failure show its last lines and raise one clear error."""
    result = subprocess.run(
        airflow_command(*args), env=dict(env), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise LocalflowError(f"{what} failed (airflow {' '.join(args)}, exit {result.returncode}):\n{tail}")
