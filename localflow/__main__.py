"""Command line of the workspace: ``python -m localflow COMMAND``, one table of commands (``COMMANDS``).

Run from the repository root with any Python 3.10+: the first use builds ``.venv`` from the lock and
re-runs the command inside it, so nothing has to be installed by hand. Inside, the environment is
computed once (``.env`` read once) and handed to the command.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from localflow import bootstrap, releases

PROG = "python -m localflow"


@dataclass(frozen=True)
class Argument:
    """One argument of a command, as ``argparse.add_argument`` takes it."""

    flags: tuple[str, ...]
    options: dict


@dataclass(frozen=True)
class Command:
    """One command: its name, one line of help, its arguments and what runs it.

    ``passes_on``: the command hands every argument to another tool (pytest, Airflow's CLI), named here.
    ``native``: it runs with the workspace's native Airflow environment (the shell's owned variables are
    ignored, with one line saying which).
    """

    name: str
    help: str
    run: Callable[[argparse.Namespace, dict[str, str]], int]
    arguments: tuple[Argument, ...] = ()
    passes_on: str = ""
    native: bool = False
    description: str = ""


def arg(*flags: str, **options) -> Argument:
    """``arg("--dag-id", help=...)``: an argument as ``add_argument`` takes it."""
    return Argument(flags, options)


# Each command imports what it needs when it runs: the supervisor (`up --supervise`) and the secrets hook
# that Airflow's *_CMD options call at every component start stay small and quick.


def _up(_args, env):
    from localflow.stack.up import up

    return up(env)


def _init(_args, env):
    from localflow.secrets.prepare import init_container

    return init_container(env)


def _secrets(args, env):
    from localflow.secrets import hook

    return hook.main([word for word in (args.action, args.name) if word], env)


def _dag_test(args, env):
    from localflow.config import settings, validation
    from localflow.debugging import dagtest
    from localflow.secrets.rules import SECRETS

    if not settings.IN_CONTAINER and not all(env.get(secret.name) for secret in SECRETS):
        # F5 before the first `up` on a fresh clone: make .env as `up` would, or Airflow would run
        # without a Fernet key and store what the run saves (connections, variables) unencrypted.
        from localflow.secrets.prepare import ensure_secrets

        ensure_secrets(settings.WORKSPACE, env)
        env = settings.current_environment()
    settings.use_environment(env)
    validation.warn(env)  # a typo in .env must not stop a debug session, nor pass unsaid
    return dagtest.main(args.file, args.dag_id, args.task_id, retries=args.retries, stock=args.stock)


def _watch(args, env):
    from localflow.watcher import run

    return run.check() if args.check else run.run(env)


def _s3_server(args, env):
    from localflow.stack import s3_server

    return (0 if s3_server.bucket_answers(env) else 1) if args.check else s3_server.serve(env)


def _problems(args, env):
    from localflow.editor import problems

    return problems.main(env, args.once)


def _run(args, env):
    from localflow.editor import run

    return run.main(env, args.file, args.dag_id, args.conf, args.logical_date)


def _airflow(args, env):
    # Not a bare `airflow`, which natively knows nothing of this workspace (~/airflow, its own
    # database) and, without .env's Fernet key, would store connection passwords in plain text.
    from localflow.airflow_cli import checked_airflow_command
    from localflow.config import settings
    from localflow.secrets import store

    return subprocess.call(checked_airflow_command(*args.args), env={**store.load(settings.WORKSPACE), **env})


def _bench(args, _env):
    return subprocess.call([sys.executable, "-m", "benchmarks.stack", *args.args], cwd=bootstrap.WORKSPACE)


def _rotate_fernet_key(_args, env):
    from localflow.secrets.rotation import rotate_fernet_key

    return rotate_fernet_key(env)


def _lock(args, env):
    from localflow import packages

    for lock_file in bootstrap.LOCK_INPUTS:
        if lock_file == bootstrap.USER_LOCK:  # yours: a conflict with the locks above said in a line or two
            packages.relock(f"{bootstrap.USER_INPUT} (as it is now)")
        elif not args.yours:
            subprocess.run(
                bootstrap.compile_command(lock_file, lock_file), cwd=bootstrap.WORKSPACE, check=True
            )
    for release in releases.SUPPORTED:  # each other supported release's locks, in locks/airflow-X.Y.Z/
        if release != releases.LOCKED and not args.yours:
            bootstrap.compile_release_locks(release)
    print(f"localflow: locked; {packages.install(env)}.", flush=True)  # .venv holds what was just locked
    return 0


def _packages(args, env):
    from pathlib import Path

    from localflow import packages
    from localflow.stack import ownership

    code = packages.main(args.command, args.packages, env)
    pid = ownership.running_pid(Path(env["AIRFLOW_HOME"])) if "AIRFLOW_HOME" in env else None
    if pid:
        print(
            f"localflow: the stack of this workspace runs (PID {pid}): its next tasks import what was added; "
            f"for a provider or a new version of a package it had imported, restart it (Ctrl-C, `{PROG} up`).",
            flush=True,
        )
    return code


def _upgrade_check(args, env):
    from localflow import upgrade
    from localflow.secrets.rules import SECRETS

    # Throwaway secrets for the throwaway homes of both releases, as `check` has: .env is never written.
    return upgrade.main(
        args.release, env, args.timeout, {secret.name: secret.generate() for secret in SECRETS}
    )


def _test(args, env):
    # The tests make throwaway homes, databases and secrets of their own (tests/conftest.py drops these
    # from the session too, for a bare pytest): a shell's AIRFLOW_HOME or Fernet key must not reach them.
    from localflow.config import settings, validation

    validation.warn_in_child(env)  # .env is not the tests', but a typo in it is still said
    test_env = settings.without_owned(os.environ)
    ignored = sorted(set(os.environ) - set(test_env))
    if ignored:
        print(settings.shell_notice(ignored), file=sys.stderr, flush=True)
    return subprocess.call(
        [sys.executable, "-m", "pytest", *args.args], cwd=bootstrap.WORKSPACE, env=test_env
    )


def _check(_args, env):
    from localflow import checks
    from localflow.config import validation
    from localflow.secrets.rules import SECRETS

    validation.warn_in_child(env)
    # Throwaway secrets for dag-test's throwaway database: .env is neither needed (CI has none) nor written.
    return checks.main({secret.name: secret.generate() for secret in SECRETS})


COMMANDS: tuple[Command, ...] = (
    Command("up", "set up (venv, secrets, database) and run Airflow natively until Ctrl-C", _up, native=True),
    Command(
        "test", "run the test suite (pytest; e.g. test tests/dags -k etl)", _test, passes_on="PYTEST ARGS"
    ),
    Command(
        "check",
        "what CI runs on your DAGs: ruff check, ruff format --check, the DAG integrity test, dag-test of "
        "every file in dags/ on a throwaway SQLite database",
        _check,
    ),
    Command(
        "secrets",
        "create or check .env, make airflow_settings.yaml; `get NAME` prints one value (for *_CMD), "
        "`new-fernet-key` prints a new key",
        _secrets,
        (
            arg("action", nargs="?", choices=("get", "new-fernet-key"), help="get NAME, or new-fernet-key"),
            arg("name", nargs="?", help="the variable of .env that `get` prints"),
        ),
        native=True,
    ),
    Command("init", "container start-up: secrets, admin password, database migration (airflow-init)", _init),
    Command(
        "dag-test",
        "run the DAG in FILE with dag.test() (what F5 does), exit 0 if it succeeded",
        _dag_test,
        (
            arg("file", help="the DAG file, in dags/"),
            arg("--dag-id", help="which DAG of the file (asked when the file has several)"),
            arg("--task-id", help="run only this task and the upstream tasks it needs"),
            arg("--retries", action="store_true", help="retry a failed task at once, up to its retries"),
            arg("--stock", action="store_true", help="plain dag.test(), without the fast path"),
        ),
        native=True,
        description="Runs one DAG file with dag.test(): F5 and Ctrl+F5 run this. A failed task is not "
        "retried (unless --retries) and is summed up at the end.",
    ),
    Command(
        "watch",
        "reparse saved DAG files at once (a component of `up` and of compose)",
        _watch,
        (arg("--check", action="store_true", help="container healthcheck: 0 when the watcher is alive"),),
        native=True,
    ),
    Command(
        "s3-server",
        "the local S3 server of remote task logs (a component of `up` and of compose while .env sets "
        "LOCALFLOW_REMOTE_LOGS: docs/logs.md)",
        _s3_server,
        (arg("--check", action="store_true", help="healthcheck: 0 when the bucket answers"),),
        native=True,
    ),
    Command(
        "problems",
        "the running stack's import errors and DAG warnings as FILE:LINE:COL: error: MESSAGE, printed again "
        "whenever they change (VS Code's Problems panel reads them: docs/editor.md)",
        _problems,
        (
            arg(
                "--once",
                action="store_true",
                help="print them once; exit 0 if there are none, 1 if some, 2 if no stack answers",
            ),
        ),
        native=True,
    ),
    Command(
        "run",
        "trigger the DAG of FILE on the running stack, print its task logs as they are written, exit 0 if "
        "the run succeeded",
        _run,
        (
            arg("file", help="the DAG file, in dags/"),
            arg("--dag-id", help="which DAG of the file (needed when the file has several)"),
            arg(
                "--conf",
                metavar="JSON",
                help="the run's configuration, a JSON object (the UI's trigger form)",
            ),
            arg("--logical-date", metavar="ISO", help="the run's logical date, e.g. 2025-01-31T00:00:00Z"),
        ),
        native=True,
        description="Triggers the DAG of FILE on the running stack (natively or in the dev container) as the "
        "UI's Trigger button does, prints each task's log lines as they are written, then the run's state and "
        "its address in the UI. Exit 0 when the run succeeded, 1 otherwise (docs/editor.md).",
    ),
    Command(
        "airflow",
        "Airflow's own CLI on this workspace: its database, DAGs folder and .env's secrets "
        "(airflow dags list, ... connections add, ... tasks test)",
        _airflow,
        passes_on="AIRFLOW ARGS",
        native=True,
    ),
    Command(
        "bench",
        "benchmark the native stack: Airflow's stock settings against ours, and airflow standalone with "
        "--configs (benchmarks/stack.py; bench --help lists its options)",
        _bench,
        passes_on="BENCHMARK ARGS",
    ),
    Command(
        "rotate-fernet-key",
        "re-encrypt stored secrets with the first key of AIRFLOW__CORE__FERNET_KEY=NEW,OLD",
        _rotate_fernet_key,
        native=True,
    ),
    Command(
        "lock",
        "recompile requirements.txt, requirements-dev.txt and requirements-s3.txt from pyproject.toml, and "
        "those of each other supported Airflow release in locks/, and requirements-user.txt from "
        "requirements-user.in",
        _lock,
        arguments=(
            arg(
                "--yours",
                action="store_true",
                help="only requirements-user.txt, after a hand edit of requirements-user.in (seconds, not minutes)",
            ),
        ),
    ),
    Command(
        "add",
        "add your packages or providers (add pandas apache-airflow-providers-http): requirements-user.in, "
        "locked against Airflow's pins, installed",
        _packages,
        (arg("packages", nargs="+", metavar="PACKAGE", help="a requirement: pandas, pandas==2.2.3, ..."),),
        description="Adds each PACKAGE to requirements-user.in (or changes its version there), locks it into "
        "requirements-user.txt against the workspace's pins (a conflict is refused and nothing changes) and "
        "installs the lock into .venv (docs/packages.md).",
    ),
    Command(
        "remove",
        "remove your packages from requirements-user.in, its lock and .venv",
        _packages,
        (arg("packages", nargs="+", metavar="PACKAGE", help="a name in requirements-user.in"),),
    ),
    Command(
        "upgrade-check",
        "rehearse an upgrade: parse, dag.test() and ruff's AIR rules of your DAGs on the current Airflow and "
        "on RELEASE (its own venv), one table of what changed; exit 1 if something got worse",
        _upgrade_check,
        (
            arg("release", help="the candidate Airflow release: 3.3.2, or another 3.x patch"),
            arg("--timeout", type=int, default=300, metavar="SECONDS", help="for each DAG's test run (300)"),
        ),
        description="Builds RELEASE in a venv of its own (~/.cache/localflow/releases; your packages "
        "re-resolved against it), runs on it and on the current release (LOCALFLOW_AIRFLOW_VERSION) the parse "
        "of every file in dags/, dag.test() of every DAG in a throwaway home on SQLite and ruff --select AIR, "
        "and prints one table of what changed. Exit 1 when something got worse (docs/releases.md).",
    ),
)
BY_NAME = {command.name: command for command in COMMANDS}


class CommandLine(argparse.ArgumentParser):
    """argparse, with a user's mistake as one line (and exit 2), as every other mistake here."""

    def error(self, message: str):
        """One line naming the mistake and where the usage is, instead of the whole usage text."""
        self.exit(2, f"localflow: {message}; see `{self.prog} --help`.\n")


def parser() -> argparse.ArgumentParser:
    """The whole command line, from ``COMMANDS``: ``--help`` of every command comes from here."""
    top = CommandLine(
        prog=PROG,
        description="The workspace's commands. README.md has the two a new user needs: up and test.",
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = commands.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            usage=f"{PROG} {command.name} [{command.passes_on}]" if command.passes_on else None,
        )
        for argument in command.arguments:
            sub.add_argument(*argument.flags, **argument.options)
    return top


def parse(argv: list[str]) -> tuple[Command, argparse.Namespace]:
    """The command and its arguments; a command that passes its arguments on gets them untouched."""
    command = BY_NAME.get(argv[0]) if argv else None
    if argv and not command and not argv[0].startswith("-"):
        parser().error(f"unknown command {argv[0]!r}")
    if command and command.passes_on:
        return command, argparse.Namespace(command=command.name, args=argv[1:])
    args, extra = parser().parse_known_args(argv)
    if extra:
        CommandLine(prog=f"{PROG} {args.command}").error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "secrets" and (args.action == "get") != bool(args.name):
        CommandLine(prog=f"{PROG} secrets").error(
            "`get` takes the NAME of one variable of .env, and only `get`"
        )
    return BY_NAME[args.command], args


def environment(command: Command) -> dict[str, str]:
    """The environment of this run, computed once: .env is read here and nowhere else in the command."""
    from localflow.config import settings
    from localflow.errors import LocalflowError

    try:
        env = settings.current_environment()
    except LocalflowError:
        if command.native:
            raise
        # test, check, lock, bench do not run on .env: a broken line in it is said by the others.
        env = settings.native_environment(read_env_file=False)
    if command.native and not settings.IN_CONTAINER:
        ignored = settings.ignored_from_shell(env, os.environ)
        if ignored:
            print(settings.shell_notice(ignored), file=sys.stderr, flush=True)
    return env


def main(argv: list[str]) -> int:
    """Dispatch a command; a user's mistake ends as one line on stderr and exit code 1."""
    if not argv or argv[0] == "help":
        parser().print_help()
        return 0
    supervising = argv[:2] == ["up", "--supervise"]  # `up` itself once prepared (stack/up.py), not a user
    if not supervising:
        command, args = parse(argv)  # before the venv: --help and a typo need nothing installed
    bootstrap.reexec_in_venv(argv)
    sync_locks = bootstrap.reexecuted()
    from localflow.errors import LocalflowError

    try:
        if supervising:
            from localflow.stack import supervisor

            return supervisor.supervise(argv[2:])
        env = environment(command)
        # The venv follows .env: the release it chooses, the optional locks its switches turn on.
        bootstrap.ensure_locks(env, sync_locks)
        if command.name in {"up", "dag-test", "init"} and (
            warning := releases.not_running_yet(bootstrap.installed_airflow(), command.name)
        ):
            print(warning, file=sys.stderr, flush=True)
        return command.run(args, env)
    except LocalflowError as error:
        print(f"localflow: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
