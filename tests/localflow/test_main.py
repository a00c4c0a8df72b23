"""``python -m localflow``'s commands that run Airflow natively never run it without the workspace's secrets.

``airflow ARGS`` is Airflow's own CLI on this workspace: a bare ``airflow`` natively reads ``~/airflow`` and
its own database, and without the Fernet key of ``.env`` stores connection passwords in plain text.
``dag-test`` (F5) may be the very first command on a fresh clone: it makes ``.env`` first, as ``up`` does.
"""

from __future__ import annotations

import stat

from localflow.config import settings
from localflow.secrets import keyguard, rules, store
from testkit.native_stack import make_workspace, run_localflow, stack_environment


def test_airflow_cli_runs_on_the_workspace(tmp_path):
    """The CLI sees the workspace's DAGs folder and database, and encrypts with the key in .env."""
    workspace = make_workspace(tmp_path)
    env = stack_environment(workspace, None)  # the fresh-machine default: SQLite in .airflow/
    assert run_localflow(env, "secrets").returncode == 0
    for args in (
        ("db", "migrate"),
        ("connections", "add", "cli_conn", "--conn-uri", "postgresql://analyst:s3cret@db.example.invalid/x"),
    ):
        result = run_localflow(env, "airflow", *args)
        assert result.returncode == 0, result.stdout + result.stderr

    # The README's example of the CLI: its answer, no warning before it.
    listed = run_localflow(env, "airflow", "dags", "list-import-errors")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "warning" not in (listed.stdout + listed.stderr).lower(), listed.stdout + listed.stderr
    result = run_localflow(env, "airflow", "config", "get-value", "core", "dags_folder")
    assert result.stdout.strip() == str(workspace / "dags")
    native = settings.native_environment(workspace, base=env)
    assert native["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith(f"{workspace}/.airflow/airflow.db")
    assert ("connection", "cli_conn") in {
        (kind, ident) for kind, ident, _ in keyguard.encrypted_values(native)
    }
    assert not keyguard.undecryptable(native)


def test_airflow_cli_without_secrets_is_one_clear_line(tmp_path):
    """Before .env exists the CLI does not run (it would store passwords unencrypted), and says why."""
    workspace = make_workspace(tmp_path)
    result = run_localflow(stack_environment(workspace, None), "airflow", "connections", "list")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"localflow: {workspace / '.env'} does not exist; run `python -m localflow secrets` to create it."
    ]
    assert not (workspace / ".airflow").exists()


def test_first_f5_on_a_fresh_clone_makes_the_secrets(tmp_path):
    """F5 before `up`: .env is made (0600, every secret valid) before Airflow runs, and the run succeeds."""
    workspace = make_workspace(tmp_path)
    dag_file = workspace / "dags" / "example_etl.py"
    result = run_localflow(stack_environment(workspace, None), "dag-test", str(dag_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "example_etl finished: success" in result.stdout
    assert set(store.load(workspace)) >= {secret.name for secret in rules.SECRETS}
    assert stat.S_IMODE((workspace / ".env").stat().st_mode) == 0o600
