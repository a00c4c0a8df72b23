"""``python -m localflow check``: what CI runs on your DAGs, the one definition of it.

ruff (lint with Airflow's AIR rules, and the format check), the DAG integrity test, and ``dag-test`` of
every file in ``dags/``, each in a throwaway Airflow home on SQLite: no running stack, and the workspace's
``.airflow/`` and ``.env`` are never written. ``.ci/run`` and the workflow in ``.github/workflows/`` run
this command and nothing else of it (docs/development.md, "CI for your repository").
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from localflow import bootstrap
from localflow.config import settings

INTEGRITY_TEST = "tests/dags/test_dag_integrity.py"


@dataclass(frozen=True)
class Step:
    """One command of the check, and what its output says went wrong, in a few words (the files)."""

    name: str
    command: list[str]
    cwd: Path
    env: Mapping[str, str]
    what_failed: Callable[[str], str]


def _files_matching(pattern: str) -> Callable[[str], str]:
    regex = re.compile(pattern, re.MULTILINE)
    return lambda output: ", ".join(sorted(set(regex.findall(output))))


def _dag_files_named(files: list[Path]) -> Callable[[str], str]:
    # pytest names a DAG file in a test id ([example_etl.py]) or in an import error (its full path).
    return lambda output: ", ".join(f"dags/{path.name}" for path in files if path.name in output)


def _dag_test_outcome(output: str) -> str:
    """dag-test's last line of its own: "DAG_ID finished: failed", or why it could not run the file."""
    lines = [line for line in output.splitlines() if line.startswith("localflow: ")]
    return re.sub(r" \([\d.]+ s\)$", "", lines[-1].removeprefix("localflow: ")) if lines else ""


def dag_files(workspace: Path) -> list[Path]:
    """The DAG files the check runs, as the integrity test finds them."""
    return sorted((workspace / "dags").glob("*.py"))


def dag_test_environment(workspace: Path, home: Path, secrets: Mapping[str, str]) -> dict[str, str]:
    """The environment of ``dag-test`` in the check: a throwaway home, SQLite database and secrets.

    Marked as the caller's, so these win over ``.env`` and ``dag-test`` has no reason to write it.
    Connections and variables come from ``airflow_settings.yaml``, or on a fresh clone (CI) from the
    example it would be made from.
    """
    settings_file = workspace / settings.SETTINGS_FILE_NAME
    if not settings_file.exists():
        settings_file = workspace / settings.SETTINGS_EXAMPLE_NAME
    base = settings.without_owned(os.environ) | {
        settings.CALLER_ENV: "1",
        "LOCALFLOW_WORKSPACE": str(workspace),
        "LOCALFLOW_SETTINGS_FILE": str(settings_file),
        **settings.home_settings(home),
        **secrets,
    }
    return settings.native_environment(workspace, base=base)


def steps(workspace: Path, home: Path, secrets: Mapping[str, str]) -> list[Step]:
    """Every step of the check, in order."""
    python = sys.executable
    # The test session makes its own home and secrets (tests/conftest.py); a shell's must not reach it.
    test_env = settings.without_owned(os.environ)
    test_env["LOCALFLOW_WORKSPACE"] = str(workspace)  # the integrity test parses this workspace's dags/
    files = dag_files(workspace)
    dag_env = dag_test_environment(workspace, home, secrets)
    return [
        Step(
            "ruff check",
            [python, "-m", "ruff", "check", "--output-format=concise", "."],
            workspace,
            os.environ,
            _files_matching(r"^(\S+?):\d+:\d+: "),
        ),
        Step(
            "ruff format --check",
            [python, "-m", "ruff", "format", "--check", "."],
            workspace,
            os.environ,
            _files_matching(r"^Would reformat: (.+)$"),
        ),
        Step(
            "DAG integrity test",
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", INTEGRITY_TEST],
            bootstrap.WORKSPACE,
            test_env,
            _dag_files_named(files),
        ),
        *(
            Step(
                f"dag-test dags/{path.name}",
                [python, "-m", "localflow", "dag-test", str(path)],
                bootstrap.WORKSPACE,
                dag_env,
                _dag_test_outcome,
            )
            for path in files
        ),
    ]


def run_step(step: Step) -> str | None:
    """Run one step; on failure show its output and return the one line naming the step and its files.

    A step that passes is one line: the output of four tools and three DAG runs would bury a failure.
    """
    started = time.monotonic()
    result = subprocess.run(
        step.command, cwd=step.cwd, env=dict(step.env), capture_output=True, text=True, check=False
    )
    took = f"({time.monotonic() - started:.1f} s)"
    if result.returncode == 0:
        print(f"localflow check: ok      {step.name} {took}", flush=True)
        return None
    output = result.stdout + result.stderr
    failure = f"{step.name}: {step.what_failed(output) or f'exit {result.returncode}'}"
    print(f"localflow check: FAILED  {step.name} {took}; its output:\n{output.rstrip()}", flush=True)
    print(f"localflow check: FAILED  {failure}", flush=True)
    return failure


def main(secrets: Mapping[str, str]) -> int:
    """Run every step (a failure does not stop the others); exit 1 if any failed."""
    workspace = settings.WORKSPACE
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="localflow-check-") as home:
        failures = [failure for step in steps(workspace, Path(home), secrets) if (failure := run_step(step))]
    took = f"{time.monotonic() - started:.0f} s"
    if failures:
        print(f"localflow check: {len(failures)} failed ({took}):", *failures, sep="\n  ")
        return 1
    print(f"localflow check: everything passed ({took})")
    return 0
