"""Your packages in the container (docs/packages.md#in-the-container), on a real engine.

In a fresh copy, ``python -m localflow add`` run inside a service container locks the package into the
bind-mounted workspace and says to rebuild; the rebuild redoes only the user's layer (the workspace's
lock layer comes from the cache) and the new image imports the package.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.containers import DesktopUser, Engine, Stack, stack_on_fresh_copy

pytestmark = pytest.mark.containers

PACKAGE = "cowsay"  # tiny, pure Python, no dependencies, in none of the workspace's locks


@pytest.fixture(scope="module")
def stack(engine: Engine, desktop_user: DesktopUser, base_dir: Path) -> Iterator[Stack]:
    """A fresh copy whose image is built once, as `docker compose build` builds it."""
    with stack_on_fresh_copy(engine, desktop_user, base_dir, "packages") as stack:
        stack.compose("build", "airflow-scheduler", timeout=1200)
        yield stack


def imports_package(stack: Stack) -> bool:
    """Whether the project's image imports the package."""
    result = stack.run(
        "docker", "run", "--rm", "--entrypoint", "python", stack.image, "-c", f"import {PACKAGE}", check=False
    )  # fmt: skip
    return result.returncode == 0


def test_add_in_the_container_locks_then_a_rebuild_redoes_only_that_layer(stack: Stack):
    """`add` inside a container writes the workspace's lock and names the rebuild; the rebuild takes the
    workspace's lock layer from the cache, installs the user's lock after it, and its image has the package."""
    assert not imports_package(stack)
    added = stack.compose(
        "run", "--rm", "--no-deps", "airflow-scheduler", "python", "-m", "localflow", "add", PACKAGE,
        timeout=300,
    )  # fmt: skip
    assert "rebuild it from the host" in added.stdout, added.stdout + added.stderr
    assert re.search(rf"^{PACKAGE}==", (stack.workspace / "requirements-user.txt").read_text(), re.MULTILINE)
    assert PACKAGE in (stack.workspace / "requirements-user.in").read_text().splitlines()

    first_image = stack.run("docker", "image", "inspect", "--format", "{{.Id}}", stack.image).stdout.strip()
    try:
        rebuilt = stack.compose("build", "--progress", "plain", "airflow-scheduler", timeout=900)
    finally:  # the first build, untagged by the rebuild: not left on the shared engine
        stack.run("docker", "rmi", first_image, check=False)
    log = rebuilt.stdout + rebuilt.stderr
    # The workspace's lock layer: the RUN that installs uv and the locks of the chosen release.
    lock_step = re.search(r"^#(\d+) \[[^\]]*\] RUN .*pip install .*uv==", log, re.MULTILINE)
    assert lock_step, log[-3000:]
    assert re.search(rf"^#{lock_step[1]} CACHED", log, re.MULTILINE), log[-3000:]
    # The user's layer runs, or comes from the cache of an earlier build of the same lock (a shared engine).
    assert re.search(r"^#\d+ \[[^\]]*\] RUN uv pip install .*requirements-user.txt", log, re.MULTILINE), log
    assert imports_package(stack)
