"""Helpers for the engine-free checks: the compose model as Docker Compose resolves it."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path

import json5

REPO = Path(__file__).resolve().parent.parent
# Files compose reads; copied so that a developer's own .env cannot change what the checks see.
COMPOSE_INPUTS = (
    "docker-compose.yaml",
    "Dockerfile",
    "localflow/config/airflow.env",
    "localflow/config/remote_logs.env",
)


def compose_cli() -> list[str]:
    """``docker compose`` (Compose v2); a clear failure when the CLI is missing."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    ):
        return [docker, "compose"]
    raise AssertionError(
        "these checks need the Docker CLI with Compose v2 (no engine): install Docker, "
        "or source ../shared/containers/env.sh after ../shared/containers/engine-up"
    )


def clean_copy(destination: Path) -> Path:
    """Copy what compose reads into ``destination`` (no .env) and return it."""
    for name in COMPOSE_INPUTS:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    return destination


def compose(project_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``docker compose ARGS`` in ``project_dir`` (no engine is contacted by ``config``); ``env``: the
    shell's environment (default: this process's)."""
    return subprocess.run(
        [*compose_cli(), "--project-directory", str(project_dir), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )


@cache
def compose_model(dotenv: str = "") -> dict:
    """The fully resolved compose model (anchors merged, env files read, defaults applied).

    ``dotenv``: the lines of a ``.env`` beside the file (a user's settings, e.g. ``COMPOSE_PROFILES``).
    """
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        copy = clean_copy(Path(directory))
        if dotenv:
            (copy / ".env").write_text(dotenv)
        result = compose(copy, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@cache
def devcontainer() -> dict:
    """devcontainer.json read as JSON with comments, the way VS Code reads it."""
    return json5.loads((REPO / ".devcontainer" / "devcontainer.json").read_text())
