"""One native stack for every test of the editor's commands, and ``problems`` following it as VS Code's
task does: started before the stack, so it first has to say that none runs and keep trying."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit.environment import REPO
from testkit.native_stack import RunningStack, make_workspace, stack_environment, start_up
from testkit.vscode_tasks import command_line, task

PROBLEMS_TASK = "localflow: problems"


def task_environment(env: dict[str, str]) -> dict[str, str]:
    """The stack's environment for a task VS Code starts in the workspace folder (the throwaway workspace
    here, which holds no ``localflow/``: the checkout's package is found through ``PYTHONPATH``)."""
    return {**env, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


@dataclass
class Editor:
    """The stack, and the output file of the problems task that has followed it from before its start."""

    stack: RunningStack
    problems: subprocess.Popen
    problems_output: Path

    @property
    def workspace(self) -> Path:
        """The workspace folder VS Code has open."""
        return self.stack.workspace

    def problems_lines(self) -> list[str]:
        """What the problems task printed so far."""
        return self.problems_output.read_text(errors="replace").splitlines()


@pytest.fixture(scope="package")
def editor(tmp_path_factory) -> Iterator[Editor]:
    """A native stack on SQLite, the problems task started as tasks.json says before the stack."""
    workspace = make_workspace(tmp_path_factory.mktemp("editor"))
    env = stack_environment(workspace, None)
    resolved = task(PROBLEMS_TASK, workspace)
    output = workspace / "problems.out"
    with output.open("wb") as sink:
        problems = subprocess.Popen(
            command_line(resolved),
            cwd=resolved["options"]["cwd"],
            env=task_environment(env),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = start_up(workspace, env)
    try:
        stack.wait_healthy()
        yield Editor(stack, problems, output)
    finally:
        problems.terminate()  # VS Code ends a task with SIGTERM
        try:
            problems.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(problems.pid, 9)
            problems.wait()
        stack.stop()
