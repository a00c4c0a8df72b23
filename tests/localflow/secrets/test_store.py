"""The secrets hook: creates .env once, never changes a set value, refuses bad ones, prints no secret."""

from __future__ import annotations

import contextlib
import os
import pty
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from localflow.config.envfile import parse
from localflow.errors import LocalflowError
from localflow.secrets import rules, store
from testkit.environment import REPO

SECRET_NAMES = [secret.name for secret in rules.SECRETS]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A fresh clone's view: the template, no .env."""
    shutil.copy(REPO / ".env.example", tmp_path / ".env.example")
    return tmp_path


def run_cli(workspace: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m localflow secrets ARGS`` in ``workspace``."""
    env = {**os.environ, "LOCALFLOW_WORKSPACE": str(workspace)}
    return subprocess.run(
        [sys.executable, "-m", "localflow", "secrets", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_fresh_workspace_gets_every_secret(workspace: Path):
    """On a fresh clone it creates .env from the template with every secret, usable as is."""
    assert sorted(store.ensure(workspace)) == sorted(SECRET_NAMES)
    values = parse((workspace / ".env").read_text(), ".env")
    Fernet(values[rules.FERNET_KEY].encode())  # raises if not a real key
    assert len(values[rules.JWT_SECRET].encode()) >= rules.MIN_JWT_SECRET_BYTES
    assert all(values[name] for name in SECRET_NAMES)
    assert "# Template of .env" in (workspace / ".env").read_text()  # the template's guidance is kept


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_env_file_is_private(workspace: Path):
    """.env is created with mode 0600."""
    store.ensure(workspace)
    assert stat.S_IMODE((workspace / ".env").stat().st_mode) == 0o600


def test_second_run_is_byte_identical(workspace: Path):
    """A second run changes nothing."""
    store.ensure(workspace)
    before = (workspace / ".env").read_bytes()
    assert store.ensure(workspace) == []
    assert (workspace / ".env").read_bytes() == before


def test_never_overwrites_values_only_adds_missing(workspace: Path):
    """Existing values and lines stay exactly as they were; only missing secrets are added."""
    key = Fernet.generate_key().decode()
    original = f"# mine\nAIRFLOW__CORE__FERNET_KEY={key}\nMY_SETTING=keep me\nLOCALFLOW_ADMIN_PASSWORD=\n"
    (workspace / ".env").write_text(original)
    generated = store.ensure(workspace)
    text = (workspace / ".env").read_text()
    assert rules.FERNET_KEY not in generated
    assert sorted(generated) == sorted(set(SECRET_NAMES) - {rules.FERNET_KEY})
    assert text.startswith(f"# mine\nAIRFLOW__CORE__FERNET_KEY={key}\nMY_SETTING=keep me\n")
    assert parse(text, ".env")[rules.ADMIN_PASSWORD]


# .env content, variable the error must name
BAD_VALUES = (
    ("AIRFLOW__CORE__FERNET_KEY=not-a-key\n", rules.FERNET_KEY),
    ("AIRFLOW__CORE__FERNET_KEY=" + "A" * 43 + "=,broken\n", rules.FERNET_KEY),
    ("AIRFLOW__API_AUTH__JWT_SECRET=short\n", rules.JWT_SECRET),
    ("LOCALFLOW_ADMIN_PASSWORD=abc\n", rules.ADMIN_PASSWORD),
)


@pytest.mark.parametrize(("content", "variable"), BAD_VALUES)
def test_bad_value_is_refused_and_file_untouched(workspace: Path, content: str, variable: str):
    """A malformed value stops the hook with one line naming the variable; the file is not changed."""
    (workspace / ".env").write_text(content)
    result = run_cli(workspace)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and "Traceback" not in result.stderr
    assert (workspace / ".env").read_text() == content


def test_malformed_line_is_refused(workspace: Path):
    """A line that is not KEY=VALUE is reported by number, and nothing is written."""
    content = "AIRFLOW__CORE__FERNET_KEY\n"
    (workspace / ".env").write_text(content)
    with pytest.raises(LocalflowError, match="line 1"):
        store.ensure(workspace)
    assert (workspace / ".env").read_text() == content


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_loose_permissions_are_tightened(workspace: Path):
    """A .env readable by others is made 0600 (values untouched)."""
    store.ensure(workspace)
    before = (workspace / ".env").read_bytes()
    (workspace / ".env").chmod(0o644)
    store.ensure(workspace)
    assert stat.S_IMODE((workspace / ".env").stat().st_mode) == 0o600
    assert (workspace / ".env").read_bytes() == before


def test_cli_prints_no_secret_and_get_prints_one(workspace: Path):
    """The hook names what it generated without values; ``get`` prints exactly one value."""
    result = run_cli(workspace)
    assert result.returncode == 0, result.stderr
    values = parse((workspace / ".env").read_text(), ".env")
    for name in SECRET_NAMES:
        assert name in result.stdout
        assert values[name] not in result.stdout + result.stderr
    fetched = run_cli(workspace, "get", rules.FERNET_KEY)
    assert fetched.returncode == 0 and fetched.stdout == values[rules.FERNET_KEY]


@pytest.mark.skipif(os.name != "posix", reason="pseudo-terminals are POSIX")
def test_get_on_a_terminal_ends_its_line(workspace: Path):
    """On a terminal ``get`` ends the line after the value, so the prompt does not run on after it. Captured
    it stays the bare value (the test above): Airflow's ``*_CMD`` options keep a trailing newline as part
    of the value (``run_command`` returns stdout unstripped)."""
    assert run_cli(workspace).returncode == 0
    value = parse((workspace / ".env").read_text(), ".env")[rules.FERNET_KEY]
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "localflow", "secrets", "get", rules.FERNET_KEY],
        cwd=REPO,
        env={**os.environ, "LOCALFLOW_WORKSPACE": str(workspace)},
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=subprocess.PIPE,
    )
    os.close(secondary)
    shown = b""
    with contextlib.suppress(OSError):  # EIO once the command has exited and closed the terminal
        while chunk := os.read(primary, 4096):
            shown += chunk
    os.close(primary)
    assert process.wait(timeout=60) == 0, process.stderr.read()
    process.stderr.close()
    assert shown == value.encode() + b"\r\n"  # the terminal turns the newline into CR LF


def test_missing_template_is_a_clear_error(tmp_path: Path):
    """Without .env.example (and no .env) it says how to restore it."""
    with pytest.raises(LocalflowError, match=r"\.env\.example is missing; restore it from git"):
        store.ensure(tmp_path)


def test_rotation_keys_are_accepted(workspace: Path):
    """ "NEW,OLD" during a rotation is a valid Fernet key setting."""
    keys = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"
    (workspace / ".env").write_text(f"AIRFLOW__CORE__FERNET_KEY={keys}\n")
    assert rules.FERNET_KEY not in store.ensure(workspace)


def test_a_symlinked_env_is_written_through(workspace: Path, tmp_path_factory):
    """A dotfiles manager's link stays a link; its target gets the missing secret, mode 0600."""
    target = tmp_path_factory.mktemp("dotfiles") / "localflow.env"
    target.write_text("LOCALFLOW_ADMIN_PASSWORD=kept-password\n")
    (workspace / ".env").symlink_to(target)
    generated = store.ensure(workspace)
    assert (workspace / ".env").is_symlink() and (workspace / ".env").resolve() == target
    values = parse(target.read_text(), ".env")
    assert values["LOCALFLOW_ADMIN_PASSWORD"] == "kept-password"
    assert set(generated) == set(SECRET_NAMES) - {"LOCALFLOW_ADMIN_PASSWORD"} <= set(values)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_broken_env_link_says_where_it_points(workspace: Path):
    """A link whose target is gone: the message names the target and the ways out, not git (.env is ignored)."""
    (workspace / ".env").symlink_to(workspace / "moved-away.env")
    with pytest.raises(LocalflowError) as error:
        store.ensure(workspace)
    message = str(error.value)
    assert "moved-away.env, which does not exist" in message and "remove the link" in message
    assert "git" not in message
    assert (workspace / ".env").is_symlink() and not (workspace / "moved-away.env").exists()
