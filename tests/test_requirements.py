"""The lock: fully pinned, current with pyproject.toml, installable on Linux for Python 3.10-3.13.

The lock checks ask PyPI (uv resolves against the registry); they need no other network.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from localflow import bootstrap, releases
from testkit.environment import REPO

# Every lock file: the default release's at the top, then each other supported release's in locks/.
LOCKS = [(release, name) for release in releases.SUPPORTED for name in bootstrap.RELEASE_LOCKS] + [
    (releases.LOCKED, bootstrap.USER_LOCK)  # your packages: locked against the default release's locks
]
LOCK_IDS = [releases.lock_path(release, name) for release, name in LOCKS]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)(\s*;\s*(.+))?$")


def pins(name: str | Path) -> dict[tuple[str, str], str]:
    """(package, marker) → version for every requirement line of a lock file."""
    found = {}
    for line in (REPO / name).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PIN.match(line.strip())
        assert match, f"{name}: not an exact pin: {line!r}"
        found[match[1].lower(), match[4] or ""] = match[2]
    return found


def uv(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run the locked uv."""
    return subprocess.run(
        [sys.executable, "-m", "uv", *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize("name", LOCK_IDS)
def test_every_requirement_is_pinned(name: str):
    """Each lock file pins every package exactly (the seed installs it with --no-deps); the user's lock
    holds what requirements-user.in asks for, nothing by default."""
    assert len(pins(name)) > 10 or name == bootstrap.USER_LOCK


def test_users_lock_is_theirs_alone():
    """requirements-user.txt is compiled from requirements-user.in against every workspace lock (so none
    of their pins moves) and is in every venv; the workspace's locks never read it."""
    assert bootstrap.LOCK_INPUTS[bootstrap.USER_LOCK][0] == bootstrap.USER_INPUT
    constraints = bootstrap.LOCK_INPUTS[bootstrap.USER_LOCK][1:]
    assert constraints == tuple(
        word for lock in bootstrap.LOCK_INPUTS if lock != bootstrap.USER_LOCK for word in ("-c", lock)
    )
    assert list(bootstrap.LOCK_INPUTS)[-1] == bootstrap.USER_LOCK  # `lock` compiles it last
    for lock, inputs in bootstrap.LOCK_INPUTS.items():
        if lock != bootstrap.USER_LOCK:
            assert bootstrap.USER_LOCK not in inputs and bootstrap.USER_INPUT not in inputs, lock
    assert bootstrap.lock_files({})[-1] == bootstrap.USER_LOCK


def test_lock_names_the_workspace_packages():
    """Airflow 3.3.2 with the postgres provider, psycopg2-binary, cryptography and debugpy are locked."""
    packages = {package for package, _ in pins("requirements.txt")}
    assert pins("requirements.txt")["apache-airflow", ""] == "3.3.2"
    assert {"apache-airflow-providers-postgres", "psycopg2-binary", "cryptography", "debugpy"} <= packages
    dev = {package for package, _ in pins("requirements-dev.txt")}
    assert {"ruff", "pytest", "uv"} <= dev


@pytest.mark.parametrize("release", releases.SUPPORTED)
@pytest.mark.parametrize("name", ["requirements-dev.txt", "requirements-s3.txt"])
def test_lock_agrees_with_the_locks_it_is_compiled_against(name: str, release: str):
    """A package in two files has the same pin in both, so the venv, the image and CI match, and turning
    remote logs on adds packages without changing one."""
    earlier = {
        **pins(releases.lock_path(release, "requirements.txt")),
        **(pins(releases.lock_path(release, "requirements-dev.txt")) if name.endswith("s3.txt") else {}),
    }
    for key, version in pins(releases.lock_path(release, name)).items():
        if key in earlier:
            assert earlier[key] == version, key


def test_users_lock_agrees_with_the_workspace_locks():
    """Your packages move none of the workspace's pins (requirements-user.txt is locked against them)."""
    workspace = {key: version for name in bootstrap.RELEASE_LOCKS for key, version in pins(name).items()}
    for key, version in pins(bootstrap.USER_LOCK).items():
        if key in workspace:
            assert workspace[key] == version, key


def test_s3_packages_are_only_in_their_own_lock():
    """The Amazon provider and moto are in requirements-s3.txt, never in the default venv or image."""
    s3_only = {"apache-airflow-providers-amazon", "moto", "boto3", "botocore"}
    assert s3_only <= {package for package, _ in pins("requirements-s3.txt")}
    for name in bootstrap.LOCK_FILES:
        assert not s3_only & {package for package, _ in pins(name)}, name
    assert bootstrap.OPTIONAL_LOCKS == {"requirements-s3.txt": "LOCALFLOW_REMOTE_LOGS"}


@pytest.mark.parametrize(("release", "name"), LOCKS, ids=LOCK_IDS)
def test_lock_is_current(release: str, name: str, tmp_path: Path):
    """Recompiling pyproject.toml gives the committed lock (someone edited the input without `lock`?).

    uv keeps the versions already in an output file it compiles to, as `lock` does with the committed one:
    starting from a copy, only a changed input changes the result, not a release on PyPI since.
    """
    output = tmp_path / name
    shutil.copy(REPO / releases.lock_path(release, name), output)
    result = subprocess.run(
        bootstrap.compile_command(name, output, release),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert pins(releases.lock_path(release, name)) == pins(output), (
        f"{name} is stale: run `python -m localflow lock`"
    )


@pytest.mark.parametrize("release", releases.SUPPORTED)
@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13"])
def test_lock_installs_from_wheels_on_linux(python: str, release: str, tmp_path: Path):
    """For each supported Python and Airflow release, every pinned package has a Linux wheel and the set is
    consistent, with the optional S3 lock too."""
    result = uv(
        "pip", "compile", *(releases.lock_path(release, name) for name in bootstrap.RELEASE_LOCKS),
        *((bootstrap.USER_LOCK,) if release == releases.LOCKED else ()),
        "--python-version", python, "--python-platform", "x86_64-manylinux_2_28",
        "--only-binary", ":all:", "--quiet", "-o", str(tmp_path / "resolved.txt"),
    )  # fmt: skip
    if releases.python_refusal(release, tuple(int(part) for part in python.split("."))):
        # releases.NEWEST_PYTHON says it does not install there: it must still not, or that limit is stale
        assert result.returncode != 0, f"Airflow {release} installs on Python {python}: update NEWEST_PYTHON"
        return
    assert result.returncode == 0, result.stderr


def test_image_venv_and_ci_install_the_same_lock():
    """The Dockerfile installs both lock files; the bootstrap (README's commands, CI) syncs the same two.
    The S3 lock only with the build arg compose sets from the remote logs switch."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY requirements.txt requirements-dev.txt /tmp/lock/" in dockerfile
    assert '-r "${lock}/requirements.txt" -r "${lock}/requirements-dev.txt"' in dockerfile
    assert 'if [ -n "${INSTALL_S3}" ]; then' in dockerfile
    assert '-r "${lock}/requirements-s3.txt"' in dockerfile
    # lock=/tmp/lock, unless AIRFLOW_VERSION (compose: LOCALFLOW_AIRFLOW_VERSION) is another release's
    assert (
        "COPY locks /tmp/lock/locks" in dockerfile
        and 'lock="/tmp/lock/locks/airflow-${AIRFLOW_VERSION}"' in dockerfile
    )
    assert bootstrap.LOCK_FILES == ("requirements.txt", "requirements-dev.txt")


def test_image_installs_the_users_lock_in_its_own_last_layer():
    """The Dockerfile installs requirements-user.txt after every other lock, in a layer of its own, so that
    `add` then a rebuild redoes only that layer (and the next build holds the user's packages)."""
    dockerfile = (REPO / "Dockerfile").read_text()
    copy = "COPY requirements-user.txt /tmp/lock/"
    assert dockerfile.count(copy) == 1
    after = dockerfile.split(copy, 1)[1]
    install = after.split("\nCOPY ", 1)[0]
    assert "-r /tmp/lock/requirements-user.txt" in install and "--no-deps" in install, install
    assert "requirements.txt" not in after.replace("requirements-user.txt", "")
    assert dockerfile.index('-r "${lock}/requirements-s3.txt"') < dockerfile.index(copy)
