"""The workflow a user's repository gets (.github/workflows/): valid for actionlint, and one definition of CI.

Each ``run:`` step is a command that ``.ci/run`` runs too, and each ``python -m localflow`` command it uses
exists: what CI does to a user's DAGs is defined once, in ``localflow/checks.py``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from localflow.__main__ import BY_NAME
from testkit.environment import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
COMMANDS = sorted(BY_NAME)
LOCALFLOW_COMMAND = re.compile(r"\bpython3? -m localflow\s+([a-z][a-z0-9-]*)")


def actionlint() -> str:
    """The locked actionlint beside this interpreter (the venv's bin/), else one on PATH."""
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert found, "actionlint is missing: it is in the dev lock; run `python3 -m localflow test`"
    return found


def run_steps(workflow: Path) -> list[str]:
    """The ``run:`` commands of every job of ``workflow``, in order, one per line."""
    jobs = yaml.safe_load(workflow.read_text())["jobs"].values()
    scripts = [step["run"] for job in jobs for step in job["steps"] if "run" in step]
    return [line.strip() for script in scripts for line in script.strip().splitlines()]


def ci_run_commands() -> set[str]:
    """The commands ``.ci/run`` runs at its top level (not its comments, nor the bodies of its blocks)."""
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    return {line.strip() for line in lines if line and not line[0].isspace() and not line.startswith("#")}


def test_there_is_a_workflow():
    """The template ships its workflow (so the parametrized tests below are never empty)."""
    assert [path.name for path in WORKFLOWS] == ["dags.yml"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_actionlint_passes(workflow: Path):
    """actionlint finds nothing: syntax, expressions, action inputs, runner labels, deprecated actions."""
    result = subprocess.run(
        [actionlint(), str(workflow.relative_to(REPO))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


BROKEN_STEP = """on: push
jobs:
  check:
    runs-on: ubuntu-latest
    steps:
{step}
"""
# id, a step that is wrong, what actionlint says of it
MISTAKES = (
    ("undefined-input", "      - uses: actions/checkout@v5\n        with:\n          python: 3.11", 'input "python" is not defined'),
    ("node-20-action", "      - uses: actions/setup-python@v5", 'runtime "node20" is deprecated'),
    ("unknown-context", "      - run: echo ${{ github.evnt_name }}", 'property "evnt_name" is not defined'),
)  # fmt: skip


@pytest.mark.parametrize(("step", "message"), [case[1:] for case in MISTAKES], ids=[c[0] for c in MISTAKES])
def test_actionlint_catches_mistakes(tmp_path: Path, step: str, message: str):
    """The locked actionlint really checks: a workflow with a mistake fails, with the mistake named."""
    workflow = tmp_path / "broken.yml"
    workflow.write_text(BROKEN_STEP.format(step=step))
    result = subprocess.run(
        [actionlint(), str(workflow)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stdout


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_every_run_step_is_a_command_of_ci_run(workflow: Path):
    """A user's CI runs nothing that .ci/run does not: one definition, checked on every CI run here."""
    steps = run_steps(workflow)
    assert steps, f"{workflow.name} runs nothing"
    assert set(steps) <= ci_run_commands(), f"not in .ci/run: {sorted(set(steps) - ci_run_commands())}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_every_localflow_command_of_the_workflow_exists(workflow: Path):
    """Each `python -m localflow COMMAND` the workflow runs is a command of the usage text."""
    used = {found for line in run_steps(workflow) for found in LOCALFLOW_COMMAND.findall(line)}
    assert used, f"{workflow.name} runs no localflow command"
    assert used <= set(COMMANDS), f"not a command: {sorted(used - set(COMMANDS))}"


def test_the_dags_workflow_runs_the_check_on_push_and_pull_request():
    """What the user gets: `check` on every push and pull request, on Python 3.11, without any secret."""
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "dags.yml").read_text())
    # PyYAML reads the key `on` as True (YAML 1.1).
    assert set(workflow[True]) == {"push", "pull_request"}
    assert run_steps(REPO / ".github" / "workflows" / "dags.yml") == ["python3 -m localflow check"]
    assert "${{ secrets." not in (REPO / ".github" / "workflows" / "dags.yml").read_text()
    setup = [step for step in workflow["jobs"]["check"]["steps"] if "setup-python" in step.get("uses", "")]
    assert setup[0]["with"]["python-version"] == "3.11"
