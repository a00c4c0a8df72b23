"""What ``python3 -m localflow test`` selects: the container tests only when ``-m`` asks for them.

pyproject.toml's ``-m "not containers"`` leaves them out by default, but pytest keeps only the last
``-m``: a user's own (``-m "not stack"``, to leave out the tests that start the native stack) would bring
back the tests that need a Docker engine and ``../shared/containers``, which a clone does not have.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from testkit.environment import REPO

PATHS = ("tests/containers", "tests/dags/test_dag_integrity.py")


@pytest.mark.parametrize(
    ("options", "containers_selected"),
    [
        ((), False),
        (("-m", "not stack"), False),
        (("-k", "policy or codespaces"), False),
        (("-m", "containers"), True),
    ],
    ids=["default", "own-marker-expression", "keyword", "containers-asked-for"],
)
def test_container_tests_are_selected_only_when_asked_for(
    options: tuple[str, ...], containers_selected: bool
):
    """With or without options of the user's, the container tests are collected only under ``-m containers``."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "localflow",
            "test",
            *PATHS,
            *options,
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    selected = [line for line in done.stdout.splitlines() if "::" in line]
    assert selected, done.stdout + done.stderr
    assert any(line.startswith("tests/containers/") for line in selected) is containers_selected, selected
    assert any(line.startswith("tests/dags/") for line in selected) is not containers_selected, selected
