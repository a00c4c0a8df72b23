"""Secure defaults: no secret in git or a build context, authentication on, nothing public by default."""

from __future__ import annotations

import re
import subprocess

import pytest

from localflow.config import settings
from localflow.secrets import rules
from testkit.container_files import compose_model, devcontainer
from testkit.environment import REPO

# What a committed secret would look like: a Fernet key, a private key, or a secret variable with a value.
SECRET_NAMES = "|".join(secret.name for secret in rules.SECRETS)
KEY_SHAPED = (
    re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(rf"^\s*(?:{SECRET_NAMES})[ \t]*[=:][ \t]*\S", re.MULTILINE),
)


def tracked_files() -> list[str]:
    """Every file git tracks."""
    return subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()


def test_patterns_catch_a_real_secret():
    """The scan would find a generated Fernet key or a filled-in .env line (else it proves nothing)."""
    fernet = rules.SECRETS[0].generate()
    assert KEY_SHAPED[0].search(f"key: {fernet}\n")
    assert KEY_SHAPED[2].search(f"AIRFLOW__CORE__FERNET_KEY={fernet}\n")


@pytest.mark.parametrize("path", tracked_files())
def test_no_secret_in_tracked_files(path: str):
    """No tracked file holds a key-shaped value or a filled-in secret variable."""
    file = REPO / path
    if not file.is_file() or file.stat().st_size > 2_000_000:
        return
    text = file.read_text(errors="ignore")
    for pattern in KEY_SHAPED:
        match = pattern.search(text)
        assert not match, f"{path} holds something that looks like a secret: {match.group(0)[:12]}…"


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.local",
        "airflow_settings.yaml",
        ".airflow/airflow.db",
        ".airflow/simple_auth_manager_passwords.json",
    ],
)
def test_local_secrets_and_state_are_ignored_by_git(path: str):
    """.env, airflow_settings.yaml and the native state (database, passwords file) can never be committed."""
    result = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False)
    assert result.returncode == 0, f"{path} is not gitignored"


def test_env_example_is_tracked_and_empty():
    """The template is committed, and its secrets are empty."""
    assert ".env.example" in tracked_files()
    values = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert all(values[secret.name] == "" for secret in rules.SECRETS)


def test_secrets_never_reach_a_build_context():
    """.dockerignore keeps .env, airflow_settings.yaml and local state out of every image build."""
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".env", "airflow_settings.yaml", ".airflow/", ".venv/", ".git/"} <= set(ignored)


def test_authentication_is_on_by_default():
    """The simple auth manager checks passwords (all_admins would let anyone in)."""
    shared = settings.shared_settings()
    assert shared["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert shared["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"


def test_listeners_default_to_loopback():
    """The api-server listens on 127.0.0.1 natively; the scheduler's health server only in its container,
    on 127.0.0.1 there too (its healthcheck runs inside the container)."""
    shared = settings.shared_settings()
    assert shared["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK" not in shared  # Airflow's default: off
    scheduler = compose_model()["services"]["airflow-scheduler"]["environment"]
    assert scheduler["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] == "127.0.0.1"


def test_codespaces_ports_stay_private():
    """No forwarded port is made public (Codespaces forwards ports as private unless told otherwise)."""
    for attributes in devcontainer().get("portsAttributes", {}).values():
        assert attributes.get("visibility", "private") == "private"
