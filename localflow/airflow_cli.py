"""Airflow's own command line, run by this interpreter: the venv's Airflow natively, the image's in compose."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

from localflow.errors import LocalflowError


def airflow_command(*args: str) -> list[str]:
    """``airflow ARGS`` run by this interpreter, so it is the venv's (or the image's) Airflow."""
    return [sys.executable, "-m", "airflow", *args]


def checked_airflow_command(*args: str) -> list[str]:
    """``airflow ARGS`` that first says in one line each setting of its environment Airflow would ignore
    (``python -m localflow airflow``): checked where Airflow's configuration is read anyway."""
    return [sys.executable, "-m", __name__, *args]


def run_airflow(args: list[str], env: Mapping[str, str], what: str) -> None:
    """Run an ``airflow`` CLI command; on failure show its last lines and raise one clear error."""
    result = subprocess.run(
        airflow_command(*args), env=dict(env), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise LocalflowError(f"{what} failed (airflow {' '.join(args)}, exit {result.returncode}):\n{tail}")


if __name__ == "__main__":
    import os
    import runpy

    from localflow.config import validation

    validation.warn(os.environ)
    sys.argv = ["airflow", *sys.argv[1:]]
    runpy.run_module("airflow", run_name="__main__", alter_sys=True)
