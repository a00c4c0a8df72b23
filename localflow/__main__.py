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
  secrets [get NAME]  create or check .env; `get` prints one value (Airflow's *_CMD options use it)
  init                container start-up: secrets, admin password, database migration (airflow-init)
  dag-test FILE       run the DAG in FILE with dag.test() (what F5 does), exit 0 if it succeeded
                      [--dag-id ID] picks one DAG of the file, [--task-id ID] one task (and its upstream)
  watch [--check]     reparse saved DAG files at once (a component of `up` and of compose)
  airflow ARGS        Airflow's own CLI on this workspace: its database, DAGs folder and .env's secrets
                      (python -m localflow airflow dags list, ... connections add, ... tasks test)
  bench [ARGS]        benchmark the native stack, Airflow's stock settings against ours (benchmarks/stack.py)
  rotate-fernet-key   re-encrypt stored secrets with the first key of AIRFLOW__CORE__FERNET_KEY=NEW,OLD
  lock                recompile requirements.txt and requirements-dev.txt from pyproject.toml
"""


def _lock() -> int:
    for lock_file in bootstrap.LOCK_FILES:
        subprocess.run(bootstrap.compile_command(lock_file, lock_file), cwd=bootstrap.WORKSPACE, check=True)
    return 0


def main(argv: list[str]) -> int:
    """Dispatch a command; a user's mistake ends as one line on stderr and exit code 1."""
    command, args = (argv[0], argv[1:]) if argv else ("help", [])
    if command in {"help", "-h", "--help"}:
        print(USAGE)
        return 0
    bootstrap.reexec_in_venv(argv)

    from localflow import secrets, settings, stack
    from localflow.errors import LocalflowError

    def dag_test() -> int:
        from localflow import dagtest

        env = settings.current_environment()
        if not settings.IN_CONTAINER and not all(env.get(secret.name) for secret in secrets.SECRETS):
            # F5 before the first `up` on a fresh clone: make .env as `up` would, or Airflow would run
            # without a Fernet key and store what the run saves (connections, variables) unencrypted.
            stack.ensure_secrets(settings.WORKSPACE, env)
            env = settings.current_environment()
        os.environ.update(env)
        return dagtest.main(args)

    def airflow() -> int:
        # Not a bare `airflow`, which natively knows nothing of this workspace (~/airflow, its own
        # database) and, without .env's Fernet key, would store connection passwords in plain text.
        env = {**secrets.load(settings.WORKSPACE), **settings.current_environment()}
        return subprocess.call(stack.airflow_command(*args), env=env)

    def watch() -> int:
        from localflow import watcher

        return watcher.main(args)

    commands = {
        "up": lambda: stack.supervise(args[1:]) if args[:1] == [stack.SUPERVISE] else stack.up(),
        "init": stack.init_container,
        "secrets": lambda: secrets.main(args),
        "dag-test": dag_test,
        "watch": watch,
        "airflow": airflow,
        "bench": lambda: subprocess.call(
            [sys.executable, "-m", "benchmarks.stack", *args], cwd=bootstrap.WORKSPACE
        ),
        "rotate-fernet-key": stack.rotate_fernet_key,
        "lock": _lock,
        "test": lambda: subprocess.call([sys.executable, "-m", "pytest", *args], cwd=bootstrap.WORKSPACE),
    }
    if command not in commands:
        print(f"localflow: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        return commands[command]()
    except LocalflowError as error:
        print(f"localflow: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
