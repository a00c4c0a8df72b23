"""The key guard and key rotation, end to end on the real PostgreSQL.

A database holding connections and variables encrypted with one Fernet key meets a workspace whose .env
holds another: the stack must refuse to start (natively and as the compose airflow-init), say how many
values are affected and the ways out, and never replace the key. Rotation must leave every value readable
with the new key alone.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from localflow.config.envfile import parse
from localflow.secrets import keyguard, rules
from testkit.environment import run_airflow
from testkit.native_stack import container_environment, make_workspace, run_localflow, stack_environment

CONNECTIONS = {
    "warehouse": "postgresql://etl:warehouse-pw@db.internal:5432/dwh",
    "api": "http://svc:api-pw@api.internal",
}


@pytest.fixture(scope="module")
def seeded_database(postgres, tmp_path_factory) -> tuple[str, str]:
    """A migrated database with two connections and a variable encrypted with a key; returns (url, key)."""
    url = postgres.create()
    key = Fernet.generate_key().decode()
    home = tmp_path_factory.mktemp("seed")
    env = stack_environment(home, url, AIRFLOW_HOME=str(home))
    env[rules.FERNET_KEY] = key
    run_airflow(env, "db", "migrate")
    for conn_id, uri in CONNECTIONS.items():
        run_airflow(env, "connections", "add", conn_id, "--conn-uri", uri)
    run_airflow(env, "variables", "set", "api_token", "token-value")
    return url, key


@pytest.fixture
def encrypted_database(postgres, seeded_database) -> tuple[str, str]:
    """A fresh copy of the seeded database for one test (PostgreSQL template copy: no re-migration)."""
    url, key = seeded_database
    return postgres.create(template=url), key


def write_env(workspace: Path, fernet_key: str | None) -> bytes:
    """A complete .env for ``workspace`` (without the Fernet key line when None); returns its bytes."""
    values = {secret.name: secret.generate() for secret in rules.SECRETS}
    if fernet_key is None:
        del values[rules.FERNET_KEY]
    else:
        values[rules.FERNET_KEY] = fernet_key
    content = "".join(f"{name}={value}\n" for name, value in values.items()).encode()
    (workspace / ".env").write_bytes(content)
    (workspace / ".env").chmod(0o600)
    return content


def localflow(workspace: Path, url: str, *args: str, container: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m localflow ARGS`` against ``url`` (as the native runner or as airflow-init)."""
    env = container_environment(workspace, url) if container else stack_environment(workspace, url)
    return run_localflow(env, *args)


@pytest.mark.parametrize("container", [False, True], ids=["native-up", "compose-init"])
def test_wrong_key_refuses_to_start(encrypted_database, tmp_path: Path, container: bool):
    """With another key in .env, start-up stops with the count and the ways out; nothing starts or changes."""
    url, _ = encrypted_database
    workspace = make_workspace(tmp_path / "workspace")
    before = write_env(workspace, Fernet.generate_key().decode())
    result = localflow(workspace, url, "init" if container else "up", container=container)
    assert result.returncode == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in result.stderr
    assert "AIRFLOW__CORE__FERNET_KEY cannot decrypt 2 connections and 1 variable" in message
    assert "Put back the key" in message and "rotate-fernet-key" in message
    assert "Airflow is up" not in result.stdout
    assert (workspace / ".env").read_bytes() == before


def test_right_key_passes_the_guard(encrypted_database, tmp_path: Path):
    """The key the data was encrypted with passes (the guard is not a blanket refusal)."""
    url, key = encrypted_database
    workspace = make_workspace(tmp_path / "workspace")
    write_env(workspace, key)
    result = localflow(workspace, url, "init", container=True)
    assert result.returncode == 0, result.stderr


# Every command that could generate a Fernet key: (id, command, as compose's airflow-init)
KEY_MAKERS = [("compose-init", "init", True), ("native-up", "up", False), ("secrets-hook", "secrets", False)]


@pytest.mark.parametrize(
    ("command", "container"), [row[1:] for row in KEY_MAKERS], ids=[row[0] for row in KEY_MAKERS]
)
def test_no_new_key_over_encrypted_data(encrypted_database, tmp_path: Path, command: str, container: bool):
    """A .env that lost its Fernet key is not given a new one while the database holds encrypted data."""
    url, _ = encrypted_database
    workspace = make_workspace(tmp_path / "workspace")
    before = write_env(workspace, None)
    result = localflow(workspace, url, command, container=container)
    assert result.returncode == 1
    assert "AIRFLOW__CORE__FERNET_KEY is missing from .env but the database holds" in result.stderr
    assert (workspace / ".env").read_bytes() == before


def test_rotation_re_encrypts_everything(encrypted_database, tmp_path: Path):
    """`rotate-fernet-key` with NEW,OLD leaves .env with NEW alone, and Airflow reads every value with it."""
    url, old = encrypted_database
    new = Fernet.generate_key().decode()
    workspace = make_workspace(tmp_path / "workspace")
    write_env(workspace, f"{new},{old}")
    result = localflow(workspace, url, "rotate-fernet-key")
    assert result.returncode == 0, result.stdout + result.stderr
    assert parse((workspace / ".env").read_text(), ".env")[rules.FERNET_KEY] == new

    env = stack_environment(workspace, url, AIRFLOW_HOME=str(tmp_path / "check-home"))
    env[rules.FERNET_KEY] = new
    assert not keyguard.undecryptable(env)
    for conn_id, uri in CONNECTIONS.items():
        shown = run_airflow(env, "connections", "get", conn_id, "-o", "json").stdout
        assert uri.split("//")[1].split("@")[0].split(":")[1] in shown  # the password, decrypted with NEW
    assert run_airflow(env, "variables", "get", "api_token").stdout.strip() == "token-value"


def test_rotation_needs_two_keys(encrypted_database, tmp_path: Path):
    """Rotation without NEW,OLD explains what to set, and changes nothing."""
    url, old = encrypted_database
    workspace = make_workspace(tmp_path / "workspace")
    before = write_env(workspace, old)
    result = localflow(workspace, url, "rotate-fernet-key")
    assert result.returncode == 1 and "NEW_KEY,OLD_KEY" in result.stderr
    assert (workspace / ".env").read_bytes() == before
