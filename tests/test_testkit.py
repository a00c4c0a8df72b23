"""The helpers of tests and benchmarks (``testkit/``) can be imported by anyone without side effects, and
benchmarks and tests stay apart: no benchmark imports a test module, no test imports a benchmark.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.environment import REPO

TESTKIT_MODULES = sorted(
    f"testkit.{path.stem}" for path in (REPO / "testkit").glob("*.py") if path.stem != "__init__"
)


@pytest.mark.parametrize("module", TESTKIT_MODULES)
def test_importing_a_testkit_module_changes_nothing(module: str, tmp_path: Path):
    """A fresh interpreter imports it: its environment, working folder and temp folder stay as they were."""
    probe = (
        "import json, os, sys, tempfile; before = (dict(os.environ), os.getcwd(), sorted(os.listdir(tempfile.gettempdir())));"
        f"import {module};"
        "after = (dict(os.environ), os.getcwd(), sorted(os.listdir(tempfile.gettempdir())));"
        "print(json.dumps([before == after, sorted(set(after[0]) ^ set(before[0]))]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    unchanged, changed_variables = json.loads(result.stdout.strip().splitlines()[-1])
    assert unchanged, f"importing {module} changed the environment ({changed_variables}) or made files"


def imported_top_level_packages(path: Path) -> set[str]:
    """The first component of every module ``path`` imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


# (folder, the package its modules must not import)
SEPARATIONS = [
    ("benchmarks", "tests"),
    ("tests", "benchmarks"),
    ("testkit", "tests"),
    ("testkit", "benchmarks"),
    ("localflow", "testkit"),
]


@pytest.mark.parametrize(
    ("folder", "forbidden"), SEPARATIONS, ids=[f"{f}-imports-no-{p}" for f, p in SEPARATIONS]
)
def test_folders_stay_apart(folder: str, forbidden: str):
    """Benchmarks and tests share only ``testkit/``; the workspace itself imports none of them."""
    offenders = sorted(
        str(path.relative_to(REPO))
        for path in (REPO / folder).rglob("*.py")
        if forbidden in imported_top_level_packages(path)
    )
    assert not offenders, f"{offenders} import {forbidden}"
