"""Command line of the workspace: ``python -m localflow COMMAND``.

Run from the repository root with any Python 3.10+: the first use builds ``.venv`` from the lock and
re-runs the command inside it, so nothing has to be installed by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys

from localflow import bootstrap

USAGE = """usage: python -m localflow COMMAND [ARGS]

  up                  set up (venv, secrets, database) and run Airflow natively until Ctrl-C
  test [PYTEST ARGS]  run the test suite (pytest)
  check               what CI runs on your DAGs: ruff check, ruff format --check, the DAG integrity test,
                      dag-test of every file in dags/ on a throwaway SQLite database
  secrets [get NAME]  create or check .env, make airflow_settings.yaml; `get` prints one value (for *_CMD)
  init                container start-up: secrets, admin password, database migration (airflow-init)
  dag-test FILE       run the DAG in FILE with dag.test() (what F5 does), exit 0 if it succeeded
                      [--dag-id ID] picks one DAG of the file, [--task-id ID] one task (and its upstream)
  watch [--check]     reparse saved DAG files at once (a component of `up` and of compose)
  s3-server [--check] the local S3 server of remote task logs (a component of `up` and of compose while
                      .env sets LOCALFLOW_REMOTE_LOGS: docs/logs.md)
  airflow ARGS        Airflow's own CLI on this workspace: its database, DAGs folder and .env's secrets
                      (python -m localflow airflow dags list, ... connections add, ... tasks test)
  bench [ARGS]        benchmark the native stack: Airflow's stock settings against ours, and airflow
                      standalone with --configs (benchmarks/stack.py)
  rotate-fernet-key   re-encrypt stored secrets with the first key of AIRFLOW__CORE__FERNET_KEY=NEW,OLD
  lock                recompile requirements.txt, requirements-dev.txt and requirements-s3.txt from
                      pyproject.toml
"""


# Each command imports what it needs when it runs: the supervisor (`up --supervise`) and the secrets hook
# that Airflow's *_CMD options call at every component start stay small and quick.


def _up(args: list[str]) -> int:
    from localflow.stack import supervisor

    if args[:1] == [supervisor.SUPERVISE]:
        return supervisor.supervise(args[1:])
    from localflow.stack.up import up

    return up()


def _init(_args: list[str]) -> int:
    from localflow.secrets.prepare import init_container

    return init_container()


def _secrets(args: list[str]) -> int:
    from localflow.secrets import hook

    return hook.main(args)


def _dag_test(args: list[str]) -> int:
    from localflow import settings
    from localflow.debugging import dagtest
    from localflow.secrets.rules import SECRETS

    env = settings.current_environment()
    if not settings.IN_CONTAINER and not all(env.get(secret.name) for secret in SECRETS):
        # F5 before the first `up` on a fresh clone: make .env as `up` would, or Airflow would run
        # without a Fernet key and store what the run saves (connections, variables) unencrypted.
        from localflow.secrets.prepare import ensure_secrets

        ensure_secrets(settings.WORKSPACE, env)
        env = settings.current_environment()
    settings.use_environment(env)
    return dagtest.main(args)


def _watch(args: list[str]) -> int:
    from localflow.watcher import run

    return run.main(args)


def _s3_server(args: list[str]) -> int:
    from localflow.stack import s3_server

    return s3_server.main(args)


def _airflow(args: list[str]) -> int:
    # Not a bare `airflow`, which natively knows nothing of this workspace (~/airflow, its own
    # database) and, without .env's Fernet key, would store connection passwords in plain text.
    from localflow import settings
    from localflow.airflow_cli import airflow_command
    from localflow.secrets import store

    env = {**store.load(settings.WORKSPACE), **settings.current_environment()}
    return subprocess.call(airflow_command(*args), env=env)


def _bench(args: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", "benchmarks.stack", *args], cwd=bootstrap.WORKSPACE)


def _rotate_fernet_key(_args: list[str]) -> int:
    from localflow.secrets.rotation import rotate_fernet_key

    return rotate_fernet_key()


def _lock(_args: list[str]) -> int:
    for lock_file in bootstrap.LOCK_INPUTS:
        subprocess.run(bootstrap.compile_command(lock_file, lock_file), cwd=bootstrap.WORKSPACE, check=True)
    return 0


def _test(args: list[str]) -> int:
    # The tests make throwaway homes, databases and secrets of their own (tests/conftest.py drops these
    # from the session too, for a bare pytest): a shell's AIRFLOW_HOME or Fernet key must not reach them.
    from localflow import settings

    env = settings.without_owned(os.environ)
    ignored = sorted(set(os.environ) - set(env))
    if ignored:
        print(settings.shell_notice(ignored), file=sys.stderr, flush=True)
    return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=bootstrap.WORKSPACE, env=env)


def _check(args: list[str]) -> int:
    from localflow import checks
    from localflow.secrets.rules import SECRETS

    # Throwaway secrets for dag-test's throwaway database: .env is neither needed (CI has none) nor written.
    return checks.main(args, {secret.name: secret.generate() for secret in SECRETS})


def _report_shell(command: str) -> None:
    """One line, once per command, naming the shell's variables that the workspace's own settings replace.

    The components `up` starts get the environment it prepared, which matches: they say nothing.
    """
    from localflow import settings

    if command not in NATIVE_COMMANDS or settings.IN_CONTAINER:
        return
    ignored = settings.ignored_from_shell(settings.native_environment(), os.environ)
    if ignored:
        print(settings.shell_notice(ignored), file=sys.stderr, flush=True)


COMMANDS = {
    "up": _up,
    "init": _init,
    "secrets": _secrets,
    "dag-test": _dag_test,
    "watch": _watch,
    "s3-server": _s3_server,
    "airflow": _airflow,
    "bench": _bench,
    "rotate-fernet-key": _rotate_fernet_key,
    "lock": _lock,
    "test": _test,
    "check": _check,
}
# The commands that run with the workspace's native Airflow environment (settings.native_environment).
NATIVE_COMMANDS = frozenset({"up", "secrets", "dag-test", "watch", "airflow", "rotate-fernet-key"})


def main(argv: list[str]) -> int:
    """Dispatch a command; a user's mistake ends as one line on stderr and exit code 1."""
    command, args = (argv[0], argv[1:]) if argv else ("help", [])
    if command in {"help", "-h", "--help"}:
        print(USAGE)
        return 0
    if command not in COMMANDS:
        print(f"localflow: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    bootstrap.reexec_in_venv(argv)
    from localflow.errors import LocalflowError

    try:
        _report_shell(command)
        return COMMANDS[command](args)
    except LocalflowError as error:
        print(f"localflow: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
