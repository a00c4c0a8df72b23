"""A venv per supported Airflow release, built from its lock, for the tests that run on every release.

Each is made once in ``~/.cache/localflow/releases/airflow-X.Y.Z`` by ``bootstrap.release_venv``, the
one ``upgrade-check`` builds its candidate with, and kept while its locks are unchanged. The workspace's own code runs in it from the checkout (``PYTHONPATH``), never installed.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from localflow import bootstrap, releases
from testkit.environment import REPO

CACHE = bootstrap.RELEASE_VENVS


def locks(release: str) -> list[str]:
    """The two lock files of ``release``'s venv, relative to the repository."""
    return [releases.lock_path(release, name) for name in bootstrap.LOCK_FILES]


def release_venv(release: str) -> Path:
    """The interpreter of a venv holding exactly ``release``'s locks (built or synced when needed)."""
    return bootstrap.release_venv(release, tuple(REPO / lock for lock in locks(release)))


def run_in(release: str, code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -c CODE`` in ``release``'s venv, with the checkout's localflow importable."""
    return subprocess.run(
        [str(release_venv(release)), "-c", code],
        cwd=REPO,
        env={**(env or os.environ), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


# Prints what localflow/internals.py finds in the venv's Airflow, one JSON line after a marker (Airflow may
# log to stdout on import).
PROBE = """
import json, os, tempfile
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="localflow-probe-")
from localflow import internals
found = [internals.problem(internal) for internal in internals.INTERNALS]  # one name may have two checks
print("LOCALFLOW-PROBE", json.dumps(found))
"""


def internal_problems(release: str) -> list[str | None]:
    """``internals.problem`` of every internal, in ``release``'s venv, in the order of ``INTERNALS``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    result = run_in(release, PROBE, env)
    for line in result.stdout.splitlines():
        if line.startswith("LOCALFLOW-PROBE "):
            return json.loads(line.split(" ", 1)[1])
    raise AssertionError(f"the probe failed in Airflow {release}'s venv: {result.stderr[-2000:]}")
