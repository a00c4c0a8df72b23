"""The README cannot drift from the workspace: it names every example DAG, command and top-level entry."""

from __future__ import annotations

import re

import pytest

from localflow.__main__ import USAGE
from testkit.environment import REPO

README = (REPO / "README.md").read_text()
COMMANDS = re.findall(r"^  ([a-z][a-z-]+)", USAGE, re.MULTILINE)


def test_first_two_commands_are_run_and_test():
    """The first code block is the two fresh-machine commands, and CI runs the second."""
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["python3 -m localflow up", "python3 -m localflow test"]
    assert "python3 -m localflow test" in (REPO / ".ci" / "run").read_text()


@pytest.mark.parametrize("dag_file", sorted((REPO / "dags").glob("*.py")), ids=lambda path: path.name)
def test_every_example_dag_is_named(dag_file):
    """Each DAG in dags/ appears in the README's layout."""
    assert dag_file.stem in README


def test_every_top_level_entry_is_in_the_layout():
    """Every tracked top-level folder and file a newcomer sees is explained."""
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    top_level = {path.split("/")[0] for path in tracked} - {
        ".gitignore",
        ".dockerignore",
        ".editorconfig",
        ".ci",
        "README.md",
    }
    for entry in top_level:
        assert entry in README, f"{entry} is not in the README"


def test_commands_exist():
    """The usage text lists the commands the README relies on."""
    assert {"up", "test", "secrets", "init", "lock"} <= set(COMMANDS)
