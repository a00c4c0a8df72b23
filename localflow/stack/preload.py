"""Fork the native stack's Airflow components from one process that has imported Airflow once.

Each Airflow component started on its own holds about 90 MB of private memory after ``import airflow``
alone, four times over. Forked from a parent that imported Airflow and the components' modules, they
share those pages copy-on-write, the way gunicorn's ``preload_app`` and Airflow's own LocalExecutor
workers do. ``gc.freeze()`` keeps the collector from touching (and so copying) the shared objects; no
component unfreezes them (the scheduler's executor, ``executor.py``, freezes in its workers
instead of around the fork as Airflow's does).

The parent must have connected to nothing and started no thread: a forked child inherits both.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path

from localflow import execution_api, import_timing
from localflow.stack.ownership import release_in_child

# What the components import when they start (the commands, their jobs, the database migration check,
# the execution API and the task runner): imported once here, shared by all. Measured with the
# components' `sys.modules` at idle; a module missing here is only imported twice, nothing breaks.
COMPONENT_MODULES = (
    "airflow.__main__",
    "airflow.cli.cli_parser",
    "airflow.cli.commands.api_server_command",
    "airflow.cli.commands.scheduler_command",
    "airflow.cli.commands.dag_processor_command",
    "airflow.cli.commands.triggerer_command",
    "airflow.api_fastapi.app",
    "airflow.api_fastapi.core_api.app",
    "airflow.api_fastapi.execution_api.app",
    "airflow.api_fastapi.execution_api.routes",
    "airflow.api_fastapi.execution_api.versions",
    "airflow.jobs.scheduler_job_runner",
    "airflow.jobs.triggerer_job_runner",
    "airflow.jobs.dag_processor_job_runner",
    "airflow.dag_processing.manager",
    "airflow.dag_processing.processor",
    "airflow.executors.local_executor",
    "localflow.stack.executor",
    "airflow.sdk.execution_time.supervisor",
    "airflow.sdk.execution_time.task_runner",
    "airflow.models.renderedtifields",
    "airflow.utils.serve_logs",
    "alembic.autogenerate",
    "alembic.migration",
    "alembic.script",
    "argcomplete",
    "asyncpg",
    "psycopg2.extras",
    "pygments.lexers",
    # Imported later by every component (the plugin check, the migration check, logging, the scheduler's
    # callbacks and queues): measured with their `sys.modules` at idle after a DAG run.
    "airflow.callbacks.database_callback_sink",
    "airflow.dag_processing.bundles.local",
    "airflow.migrations.utils",
    "airflow.sdk._shared.logging.remote",
    "airflow.sdk.bases.operatorlink",
    "airflow.sdk.bases.skipmixin",
    "airflow.serialization.definitions.mappedoperator",
    "alembic.command",
    "alembic.config",
    "encodings.idna",
    "multiprocessing.popen_fork",
    "multiprocessing.queues",
    "multiprocessing.synchronize",
)
# What the Celery workers import, preloaded only when the stack runs the CeleryExecutor (the scheduler
# imports the executor too).
CELERY_MODULES = (
    "airflow.providers.celery.cli.celery_command",
    "airflow.providers.celery.executors.celery_executor",
    "airflow.providers.celery.executors.celery_executor_utils",
    "celery.apps.worker",
    "celery.worker.consumer",
    "celery.concurrency.prefork",
    "kombu.transport.redis",
)


def preload(*, celery: bool = False) -> None:
    """Import Airflow here (and Celery, for its workers), then freeze what it allocated.

    Airflow reads part of its configuration at import: this process's environment must be the components'.
    """
    for module in COMPONENT_MODULES + (CELERY_MODULES if celery else ()):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            # Measured on 3.3.2: a module an older release does not have is skipped (only that one).
            if not error.name or not module.startswith(error.name):
                raise
    from airflow.cli import cli_parser
    from airflow.models import import_all_models
    from sqlalchemy.orm import configure_mappers

    # What each component would otherwise build for itself on first use, shared instead: SQLAlchemy
    # configures the ORM mappers of every model at the first query (measured: 27 MB PSS less for the
    # stack when done here), and `airflow` builds its command-line parser (cached) before it runs.
    # Neither connects to the database.
    import_all_models()
    configure_mappers()
    cli_parser.get_parser()
    # The api-server's Execution API without a copy of its routes per API version (3 s and 49 MB).
    execution_api.serve_unversioned()
    gc.collect()
    gc.freeze()


def name_slow_plugins() -> None:
    """Load the plugins folder, timed, in a process forked from this one, and name its slow files here.

    Once per ``up``, on this process's output (the terminal), while the components start: they load the
    plugins each for themselves, from a fork made before this one loads them. The timing process is
    forked twice, so that it is nobody's child and never waited for; it writes only its own lines.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)  # the first fork exits at once
        return
    try:
        if os.fork():
            os._exit(0)
        os.setsid()
        release_in_child()
        output = os.dup(1)
        quiet = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # what the plugins and Airflow's logging write is the components' to show
            os.dup2(quiet, fd)
        from airflow import plugins_manager
        from airflow.configuration import conf

        folder = Path(conf.get("core", "plugins_folder"))
        with import_timing.timed([folder]) as times:
            plugins_manager.ensure_plugins_loaded()
        what = "each Airflow component imports it at start, and each task"
        lines = import_timing.slow_lines(times, import_timing.threshold(), folder.parent, what)
        os.write(output, "".join(f"{line}\n" for line in lines).encode())
    finally:
        os._exit(0)


class ForkedProcess:
    """A child process by PID, with the part of ``subprocess.Popen``'s interface the supervisor uses.

    A forked component, or any component the supervisor adopted after re-executing itself (same PID).
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal), or None while it runs."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it has exited, code unknown
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit; ``subprocess.TimeoutExpired`` if it runs past ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.05)
        return self.returncode


def fork_airflow(args: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> ForkedProcess:
    """Run ``airflow ARGS`` in a forked child in its own session, output appended to ``log_path``.

    ``env``: variables the child adds to its environment (Airflow reads its settings from there on use).
    """
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()  # or what is still buffered would be written by the child too
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.close(log)
        return ForkedProcess(pid)
    code = 1
    try:
        os.setsid()  # its own process group: the supervisor signals the component and what it forks
        release_in_child()  # the workspace's stack lock is the supervisor's
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)  # the parent's handlers only set its own flag
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        # Python's streams may not be on 1 and 2 (a test runner's capture): put them there.
        sys.stdout, sys.stderr = (
            open(fd, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
            for fd in (1, 2)
        )
        import setproctitle

        # `ps` and the tests tell the components apart by command line, as if started on their own.
        setproctitle.setproctitle(" ".join(["airflow", *args]))
        sys.argv = ["airflow", *args]
        os.environ.update(env or {})
        from airflow.__main__ import main

        main()
        code = 0
    except SystemExit as exit_request:
        code = exit_request.code if isinstance(exit_request.code, int) else (exit_request.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # never return into the parent's code, nor run its exit handlers
