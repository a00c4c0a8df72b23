"""Bad input to our own commands: one clear line, a non-zero exit, no traceback, nothing overwritten."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from testkit.environment import POSTGRES_SERVER_URL, free_port
from testkit.native_stack import make_workspace, run_localflow, stack_environment

VALID_ENV = (
    "AIRFLOW__CORE__FERNET_KEY=" + "a" * 43 + "=\n"
    "AIRFLOW__API_AUTH__JWT_SECRET=" + "j" * 86 + "\n"
    "AIRFLOW__API__SECRET_KEY=" + "s" * 32 + "\n"
    "LOCALFLOW_ADMIN_PASSWORD=correct-horse\n"
)


def with_env(content: str) -> Callable[[Path, dict], None]:
    """Set-up: the workspace's .env holds ``content``."""

    def setup(workspace: Path, env: dict) -> None:
        (workspace / ".env").write_text(content)
        (workspace / ".env").chmod(0o600)

    return setup


def without_template(workspace: Path, env: dict) -> None:
    """Set-up: a workspace that lost .env.example (and has no .env)."""
    (workspace / ".env.example").unlink()


def unreachable_postgres(workspace: Path, env: dict) -> None:
    """Set-up: the database URL points at a port nothing listens on."""
    with_env(VALID_ENV)(workspace, env)
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
        f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/airflow"
    )


MISSING_DATABASE = f"localflow_never_created_{os.getpid()}"


def missing_postgres_database(workspace: Path, env: dict) -> None:
    """Set-up: the database URL names a database the (running) PostgreSQL server does not have."""
    with_env(VALID_ENV)(workspace, env)
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"{POSTGRES_SERVER_URL}/{MISSING_DATABASE}"


def dag_file_outside_dags_folder(workspace: Path, env: dict) -> None:
    """A DAG file saved next to the DAGs folder instead of in it."""
    with_env(VALID_ENV)(workspace, env)
    (workspace / "stray_dag.py").write_text((workspace / "dags" / "example_etl.py").read_text())


def celery(database: str | None = None, **more: str):
    """Set-up: .env switches to Celery (``COMPOSE_PROFILES=celery``) on ``database``, with ``more``.

    The default database is a PostgreSQL URL nothing listens on: the check must come first.
    """

    def setup(workspace: Path, env: dict) -> None:
        lines = {"COMPOSE_PROFILES": "celery", **more}
        with_env(VALID_ENV + "".join(f"{name}={value}\n" for name, value in lines.items()))(workspace, env)
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
            database or f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/airflow"
        )

    return setup


def nothing(workspace: Path, env: dict) -> None:
    """Set-up: a fresh workspace."""


# id, set-up, command, exit code, what the one line must say (long lines: one case per line)
CASES = (
    (
        "malformed-line",
        with_env(VALID_ENV + "this is not a setting\n"),
        ["up"],
        1,
        ".env, line 5: not a KEY=VALUE line",
    ),
    (
        "unknown-setting",
        with_env(VALID_ENV + "AIRFLOW__CORE__PARALELISM=2\n"),
        ["up"],
        1,
        "did you mean AIRFLOW__CORE__PARALLELISM?",
    ),
    (
        "hanging-dag-file-unreported",
        with_env(VALID_ENV + "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT=15\n"),
        ["up"],
        1,
        "must be longer than AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT",
    ),
    (
        "bad-fernet-key",
        with_env(VALID_ENV.replace("a" * 43 + "=", "nope")),
        ["secrets"],
        1,
        "AIRFLOW__CORE__FERNET_KEY in .env is not a valid Fernet key",
    ),
    ("missing-template", without_template, ["secrets"], 1, ".env.example is missing; restore it from git"),
    (
        "missing-dag-file",
        with_env(VALID_ENV),
        ["dag-test", "dags/no_such_dag.py"],
        1,
        "dags/no_such_dag.py does not exist",
    ),
    (
        "dag-file-outside-dags-folder",
        dag_file_outside_dags_folder,
        ["dag-test", "{workspace}/stray_dag.py"],
        1,
        "stray_dag.py is not in the DAGs folder",
    ),
    (
        "postgres-unreachable",
        unreachable_postgres,
        ["up"],
        1,
        "cannot reach the metadata database at 127.0.0.1:",
    ),
    *(
        (
            f"postgres-database-missing-{args[0]}",
            missing_postgres_database,
            args,
            1,
            f'database "{MISSING_DATABASE}" does not exist on the PostgreSQL server at '
            f"{make_url(POSTGRES_SERVER_URL).host}:{make_url(POSTGRES_SERVER_URL).port or 5432}; create it: "
            f"createdb -h {make_url(POSTGRES_SERVER_URL).host}",
        )
        for args in (["up"], ["dag-test", "{workspace}/dags/example_etl.py"])
    ),
    (
        "unset-secret",
        with_env(VALID_ENV),
        ["secrets", "get", "NO_SUCH_SECRET"],
        1,
        "NO_SUCH_SECRET is not set in .env",
    ),
    (
        "check-with-arguments",
        nothing,
        ["check", "dags/example_etl.py"],
        2,
        "localflow: unrecognized arguments: dags/example_etl.py; see `python -m localflow check --help`.",
    ),
    (
        "unknown-localflow-setting",
        with_env(VALID_ENV + "LOCALFLOW_DEBUG_TASK=example_etl.transform\n"),
        ["up"],
        1,
        "LOCALFLOW_DEBUG_TASK: the workspace has no such setting; did you mean LOCALFLOW_DEBUG_TASKS?",
    ),
    (
        "switch-neither-on-nor-off",
        with_env(VALID_ENV + "LOCALFLOW_PRELOAD=maybe\n"),
        ["up"],
        1,
        "LOCALFLOW_PRELOAD='maybe': a switch is on or off",
    ),
    (
        "dag-test-without-file",
        with_env(VALID_ENV),
        ["dag-test"],
        2,
        "localflow: the following arguments are required: file",
    ),
    (
        "celery-on-sqlite",
        celery(database="sqlite:////tmp/no.db"),
        ["up"],
        1,
        "the CeleryExecutor needs PostgreSQL: set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    ),
    (
        "celery-no-workers",
        celery(LOCALFLOW_CELERY_WORKERS="0"),
        ["up"],
        1,
        "LOCALFLOW_CELERY_WORKERS='0' in .env: set a number of workers, 1 or more.",
    ),
    (
        "celery-broker-unreachable",
        celery(AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"),
        ["up"],
        1,
        "cannot reach the Celery broker (Redis) at 127.0.0.1:",
    ),
    (
        "component-log-size",
        with_env(VALID_ENV + "LOCALFLOW_COMPONENT_LOG_MAX_MB=lots\n"),
        ["up"],
        1,
        "LOCALFLOW_COMPONENT_LOG_MAX_MB='lots' in .env: set the size in MiB",
    ),
    (
        "stall-timeout",
        with_env(VALID_ENV + "LOCALFLOW_STALL_TIMEOUT=-5\n"),
        ["up"],
        1,
        "LOCALFLOW_STALL_TIMEOUT='-5' in .env: set the seconds after which a component",
    ),
    ("unknown-command", nothing, ["frobnicate"], 2, "unknown command 'frobnicate'"),
    (
        "secrets-get-without-name",
        nothing,
        ["secrets", "get"],
        2,
        "`get` takes the NAME of one variable of .env",
    ),
    ("supervise-by-hand", nothing, ["up", "--supervise"], 1, "run `python -m localflow up`"),
    ("add-not-a-requirement", nothing, ["add", "foo@@bar"], 1, "'foo@@bar' is not a package requirement"),
    ("remove-not-yours", nothing, ["remove", "pandas"], 1, "not in requirements-user.in: pandas;"),
    ("add-nothing", nothing, ["add"], 2, "the following arguments are required: PACKAGE"),
)


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Content and mode of every file under ``root``."""
    return {
        str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mode)
        for path in root.rglob("*")
        if path.is_file()
    }


def run(workspace: Path, env: dict, args: list[str]) -> subprocess.CompletedProcess:
    """``python -m localflow ARGS`` for ``workspace``."""
    return run_localflow(env, *args)


def assert_one_clear_line(result: subprocess.CompletedProcess, code: int, expected: str) -> None:
    """Exit code, and exactly one explanatory line on stderr, no traceback."""
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    first_line, *_ = result.stderr.strip().splitlines()
    assert expected in first_line, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    ("setup", "args", "code", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_bad_input(tmp_path: Path, setup, args: list[str], code: int, expected: str):
    """Each mistake gets its own clear line, and the workspace is exactly as it was."""
    workspace = make_workspace(tmp_path)
    env = stack_environment(workspace, None)
    setup(workspace, env)
    before = snapshot(workspace)
    result = run(workspace, env, [arg.format(workspace=workspace) for arg in args])
    assert_one_clear_line(result, code, expected)
    assert snapshot(workspace) == before


def read_only(path: Path, on: bool) -> None:
    """Make a directory read-only even for root (immutable), or writable again."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)
    else:
        path.chmod(0o555 if on else 0o755)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_read_only_workspace(tmp_path: Path):
    """A workspace the user cannot write: the secrets hook says so, and writes nothing."""
    workspace = make_workspace(tmp_path)
    env = stack_environment(workspace, None)
    before = snapshot(workspace)
    read_only(workspace, on=True)
    try:
        result = run(workspace, env, ["secrets"])
    finally:
        read_only(workspace, on=False)
    assert_one_clear_line(result, 1, "cannot create")
    assert "is the workspace writable?" in result.stderr
    assert snapshot(workspace) == before
