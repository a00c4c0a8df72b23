"""Run the DAG defined in one file with ``dag.test()``, in this process: what F5 and the tests use.

``python -m localflow dag-test dags/example_etl.py [--dag-id ID] [--task-id ID]`` loads the file the way
the dag-processor does (``dags/`` and ``plugins/`` on ``sys.path``), picks its DAG (or asks which, when the
file defines several), runs it with ``dag.test()`` and exits 0 only if the run succeeded. DAG files need
no ``if __name__ == "__main__"`` block. ``--task-id`` runs one task and the upstream tasks it needs.

A failed task is not retried (``--retries``: retried at once, up to its retries) and is summed up at the
end with the lines of its traceback in the user's code; under a debugger it stops at the raising line.

Unless ``--stock`` is given, the run leaves out what a one-file debug run does not need (see ``fast``):
stock ``dag.test()`` spends most of its time before the first task, and under a debugger all of it is
traced. docs/performance.md, "F5 to a breakpoint", has the measurements.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import sysconfig
import time
import traceback
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from localflow import execution_api as unversioned
from localflow import import_timing, internals
from localflow.config import settings
from localflow.database import missing_database
from localflow.debugging import isolation, support
from localflow.errors import LocalflowError

PROCESS_CONTEXT = "_AIRFLOW_PROCESS_CONTEXT"  # private: see localflow/internals.py


def dags_folder() -> Path:
    """The folder of the ``dags-folder`` bundle, which dag.test() syncs before it runs."""
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder")).resolve()


def require_in_dags_folder(path: Path) -> None:
    """dag.test() runs only DAGs of a bundle (elsewhere it fails with "the dag is not serialized")."""
    folder = dags_folder()
    if not path.is_relative_to(folder):
        raise LocalflowError(
            f"{path} is not in the DAGs folder ({folder}); move it there, or point "
            "AIRFLOW__CORE__DAGS_FOLDER at its folder."
        )


DAGBAG = "airflow.dag_processing.dagbag"


def dagbag_module() -> Any:
    """The module dag.test() takes ``BundleDagBag`` from (before 3.2: ``airflow.models.dagbag``)."""
    import importlib

    return importlib.import_module(
        DAGBAG if internals.holds(DAGBAG, "BundleDagBag") else "airflow.models.dagbag"
    )


def listener_manager() -> Any:
    """The listener manager of the Task SDK, whose hooks dag.test()'s tasks call."""
    if internals.holds("airflow.sdk.listener", "get_listener_manager"):
        from airflow.sdk.listener import get_listener_manager
    else:  # before 3.2
        from airflow.listeners.listener import get_listener_manager
    return get_listener_manager()


def load_dags(path: Path) -> tuple[dict, object]:
    """Parse ``path`` as the dag-processor does; return its DAGs by dag_id, and the bag itself.

    The file is parsed as part of the ``dags-folder`` bundle, so the bag can stand in for dag.test()'s own
    parse of the whole bundle.
    """
    module = dagbag_module()
    named = {"bundle_name": "dags-folder"} if module.__name__ == DAGBAG else {}  # 3.1's takes no name
    bag = module.BundleDagBag(dag_folder=str(path), bundle_path=dags_folder(), safe_mode=False, **named)
    if bag.import_errors:
        error = next(iter(bag.import_errors.values())).strip().splitlines()[-1]
        raise LocalflowError(f"{path.name} failed to import: {error}")
    return bag.dags, bag


@contextlib.contextmanager
def database_secrets_while_parsing() -> Iterator[None]:
    """Top-level lookups of the parse see the metadata database too, as the stack's dag-processor's do.

    Outside a task, the Task SDK looks variables and connections up in the configured backends and the
    environment only, unless the process says it is a server (``_AIRFLOW_PROCESS_CONTEXT``, set by the
    scheduler and the triggerer): a variable stored in the UI would be missing under F5 alone. This
    process has the database at hand, as a server does.
    """

    previous = os.environ.get(PROCESS_CONTEXT)
    os.environ[PROCESS_CONTEXT] = "server"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PROCESS_CONTEXT, None)
        else:
            os.environ[PROCESS_CONTEXT] = previous


def load_plugins() -> None:
    """Airflow's two plugin managers load the plugins folder now, each executing its files, not mid-run.

    The Task SDK's (listeners, macros) and the scheduler side's (operator links, timetables), as
    ``dag.test()`` would on first use; each keeps what it loaded.
    """
    from airflow import plugins_manager

    listener_manager()
    plugins_manager.ensure_plugins_loaded()


def report_slow_imports(times: dict, folder: Path, what: str) -> None:
    """Name each file of ``times`` slower to import than ``LOCALFLOW_SLOW_IMPORT``, once, before the run."""
    for line in import_timing.slow_lines(times, import_timing.threshold(), folder.parent, what):
        print(line, flush=True)


def choose(dags: dict, dag_id: str | None, path: Path) -> object:
    """The DAG to run: the one asked for, the only one, or the user's pick when there are several."""
    if not dags:
        raise LocalflowError(f"{path.name} defines no DAG (is the @dag function called at the bottom?).")
    if dag_id:
        if dag_id not in dags:
            raise LocalflowError(f"{path.name} has no DAG {dag_id!r}; it has: {', '.join(sorted(dags))}.")
        return dags[dag_id]
    if len(dags) == 1:
        return next(iter(dags.values()))
    names = sorted(dags)
    if not sys.stdin.isatty():
        raise LocalflowError(f"{path.name} defines several DAGs ({', '.join(names)}); pass --dag-id.")
    for number, name in enumerate(names, 1):
        print(f"  {number}) {name}")
    answer = input("Which DAG? ").strip()
    return dags[names[int(answer) - 1]] if answer.isdigit() else choose(dags, answer, path)


def only_task(dag, task_id: str):
    """The DAG cut down to ``task_id`` and everything upstream of it, whose results it reads.

    Running the upstream tasks is what makes their XComs exist: ``airflow tasks test`` of a downstream
    task alone fails on a missing XCom and still exits 0.
    """
    if task_id not in dag.task_dict:
        raise LocalflowError(
            f"DAG {dag.dag_id!r} has no task {task_id!r}; it has: {', '.join(sorted(dag.task_dict))}."
        )
    return copy_of(dag, [task_id], include_upstream=True)


def copy_of(dag, task_ids, *, include_upstream: bool):
    """``dag.partial_subset``, with Airflow's sentinels kept as they are.

    Airflow checks its "not set" values by identity (``x is NOTSET``, ``expand_input is
    EXPAND_INPUT_EMPTY``), and the copy would make new ones (https://github.com/apache/airflow/issues/41160):
    each instance of a decorated mapped task failed with "unexpected expand_input", and a
    TriggerDagRunOperator with "'ArgNotSet' object is not an instance of 'str'". So ``NOTSET`` copies to
    itself while the copy is made, and the empty expand input is put back afterwards.
    """
    from airflow.sdk.bases.decorator import DecoratedMappedOperator
    from airflow.sdk.definitions._internal.expandinput import EXPAND_INPUT_EMPTY
    from airflow.sdk.definitions._internal.types import ArgNotSet

    ArgNotSet.__deepcopy__ = lambda self, memo: self  # a singleton: NOTSET, SET_DURING_EXECUTION
    try:
        subset = dag.partial_subset(
            task_ids=task_ids, include_upstream=include_upstream, include_downstream=False
        )
    finally:
        del ArgNotSet.__deepcopy__
    for task in subset.tasks:
        if isinstance(task, DecoratedMappedOperator) and task.expand_input == EXPAND_INPUT_EMPTY:
            task.expand_input = EXPAND_INPUT_EMPTY
    return subset


def without_retry_waits(dag, *, retries: bool):
    """A copy of ``dag`` whose failed tasks do not hold the run up.

    dag.test() waits out each ``retry_delay`` (5 minutes by default), logging "No tasks to run" every
    second. Under a debugger the failure is what the user came to see: by default each task runs once;
    with ``retries`` a failed task is retried at once, up to its retries. Only the run's copy changes: the
    DAG written to the database (and run by the stack) keeps its retry policy.
    """
    debug_copy = copy_of(dag, dag.task_ids, include_upstream=False)
    for task in debug_copy.tasks:
        if retries:
            task.retry_delay = timedelta(0)
            task.retry_exponential_backoff = 0
        else:
            task.retries = 0
    return debug_copy


def _name(task_instance: Any) -> str:
    map_index = getattr(task_instance, "map_index", -1)
    return task_instance.task_id + (f"[{map_index}]" if map_index is not None and map_index >= 0 else "")


class FailedTasks:
    """Listener that keeps what each failed task raised, for the summary at the end of the run.

    Airflow calls ``on_task_instance_failed`` for a try that will be retried too: a later try that
    succeeds (``--retries``), or is skipped, takes the task off the list.
    """

    def __init__(self) -> None:
        self.errors: dict[str, Any] = {}

    @support.hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        """Remember the last error of each task instance (a retried one keeps its last)."""
        self.errors[_name(task_instance)] = error

    @support.hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        """A retry succeeded: the task did not fail."""
        self.errors.pop(_name(task_instance), None)

    @support.hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        """A retry was skipped: the task did not fail."""
        self.errors.pop(_name(task_instance), None)


def _in_library(filename: str) -> bool:
    """Whether a traceback frame is Python's or an installed package's code, not the user's."""
    libraries = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return filename.startswith("<") or any(filename.startswith(folder) for folder in libraries)


def failure_summary(errors: dict[str, Any]) -> str:
    """Each failed task in a few lines: its error, and the traceback's lines in the user's code."""
    lines = []
    for name, error in errors.items():
        if not isinstance(error, BaseException):
            lines.append(f"  {name} failed: {error}")
            continue
        lines.append(f"  {name} failed: {type(error).__name__}: {error}")
        frames = traceback.extract_tb(error.__traceback__)
        for frame in [f for f in frames if not _in_library(f.filename)] or frames[-1:]:
            lines.append(f'    File "{frame.filename}", line {frame.lineno}, in {frame.name}')
            if frame.line:
                lines.append(f"      {frame.line}")
    return "\n".join(lines)


def ensure_database() -> None:
    """Migrate the metadata database on the very first run (a fresh clone has none yet)."""
    import sqlalchemy as sa
    from airflow import settings
    from airflow.utils import db

    try:
        migrated = sa.inspect(settings.engine).has_table("dag_run")
    except sa.exc.OperationalError as error:
        url = settings.engine.url
        reason = str(error.orig).strip().splitlines()[0] if error.orig else "no answer"
        raise LocalflowError(
            missing_database(url.render_as_string(hide_password=False))
            or f"cannot reach the metadata database at {url.host or url.database} ({reason}); start it, "
            "or fix AIRFLOW__DATABASE__SQL_ALCHEMY_CONN in .env."
        ) from None
    if migrated:
        from localflow.secrets import schema

        with settings.engine.connect() as connection:
            refusal = schema.newer_than_installed(
                set(connection.scalars(sa.text("SELECT version_num FROM alembic_version")))
            )
        if refusal:  # a database a newer Airflow migrated: said, and left as it is
            raise LocalflowError(refusal)
    else:
        print("localflow: first run: migrating the metadata database (once) ...", flush=True)
        db.upgradedb()


@contextlib.contextmanager
def fast(bag: object) -> Iterator[None]:
    """What dag.test() does, minus what a run of one file does not need. Each step is Airflow's own:

    * the bundle sync parses only this file: dag.test() re-parses every file of the ``dags-folder``
      bundle (``BundleDagBag``) to write the DAG to the database; the bag already parsed stands in for it,
      and ``sync_bag_to_db`` limits its changes to the files in the bag;
    * the in-process Execution API is built without per-version route copies (``localflow/execution_api.py``), ahead of the
      run and untraced, and serves ids beyond ASCII (``serve_unicode_paths``);
    * under a debugger the set-up runs untraced, and the thread is traced only while a task runs.
    """
    from airflow.api_fastapi.execution_api import app as execution_api
    from airflow.sdk.execution_time import supervisor

    bags = dagbag_module()
    stock_bag = bags.BundleDagBag
    stock_factory = execution_api.create_task_execution_api_app

    def bundle_bag(*args, **kwargs):
        if Path(kwargs.get("bundle_path") or "").resolve() == Path(bag.bundle_path).resolve():
            return bag
        return stock_bag(*args, **kwargs)

    def unversioned_app(lifespan=execution_api.lifespan):
        # In-process callers do not authenticate (InProcessExecutionAPI overrides that): no tokens to renew.
        return unversioned.create_app(lifespan, reissue_tokens=False)

    bags.BundleDagBag = bundle_bag
    execution_api.create_task_execution_api_app = unversioned_app
    stock_api_server = supervisor.in_process_api_server
    if not internals.holds(supervisor.__name__, "in_process_api_server"):
        # Before 3.3 each task gets a new API; one for the run, as 3.3 does, is the one built ahead here.
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(stock_api_server)
    listener = support.TracingListener()
    listener_manager().add_listener(listener)
    try:
        with support.untraced():
            transport = supervisor.in_process_api_server().transport
            unversioned.serve_unicode_paths(transport)  # ids such as täglich_bericht
            # Requests are served on the API's own event-loop thread: full speed there too.
            transport.app.loop.call_soon_threadsafe(support.trace_this_thread, False)
        support.trace_this_thread(False)  # until the first task starts (TracingListener)
        yield
    finally:
        support.trace_this_thread(True)
        listener_manager().pm.unregister(listener)
        bags.BundleDagBag = stock_bag
        execution_api.create_task_execution_api_app = stock_factory
        supervisor.in_process_api_server = stock_api_server


def run(
    path: Path,
    dag_id: str | None = None,
    task_id: str | None = None,
    *,
    stock: bool = False,
    retries: bool = False,
    failed: FailedTasks | None = None,
):
    """Run the DAG of ``path`` (or one task of it) with dag.test(); return the DagRun.

    Unless ``stock``, failed tasks do not wait for their retries (``without_retry_waits``) and what they
    raised is kept in ``failed``.
    """
    settings.take_warning_options()  # before Airflow's imports, which look at sys.warnoptions
    isolation.keep_triggers_local()  # the running stack's triggerer must leave this run's triggers alone
    with support.untraced():  # Airflow's imports and configuration: the bulk of a traced start-up
        import airflow.sdk  # noqa: F401

        require_in_dags_folder(path)
        ensure_database()  # first: a database this release cannot run on is said before anything else
        dagbag_module()

        support.make_context_inspectable()
    from airflow.configuration import conf

    # Traced: breakpoints at the top level of plugin and DAG files are hit.
    plugins = Path(conf.get("core", "plugins_folder"))
    with import_timing.timed([plugins]) as plugin_times:
        load_plugins()
    report_slow_imports(plugin_times, plugins, "each Airflow component imports it at start, and each task")
    with database_secrets_while_parsing(), import_timing.timed([dags_folder()]) as dag_times:
        dags, bag = load_dags(path)
    report_slow_imports(
        dag_times, dags_folder(), "the stack imports it at each parse, and in each task of it"
    )
    dag = choose(dags, dag_id or None, path)
    if task_id:
        dag = only_task(dag, task_id)
    if stock:
        return dag.test()
    dag = without_retry_waits(dag, retries=retries)
    failed = failed or FailedTasks()
    listener_manager().add_listener(failed)
    try:
        with fast(bag):
            return dag.test()
    finally:
        listener_manager().pm.unregister(failed)


def main(
    file: str | Path, dag_id: str | None = None, task_id: str | None = None, *, retries=False, stock=False
) -> int:
    """Run the DAG of ``file`` (``python -m localflow dag-test``), and turn its final state into the exit code."""
    path = Path(file).resolve()
    if not path.is_file():
        raise LocalflowError(f"{file} does not exist.")
    started = time.monotonic()
    failed = FailedTasks()
    dag_run = run(path, dag_id, task_id, stock=stock, retries=retries, failed=failed)
    state = getattr(dag_run, "state", None)
    print(f"localflow: {dag_run.dag_id} finished: {state} ({time.monotonic() - started:.1f} s)")
    if failed.errors:
        print(failure_summary(failed.errors))
    return 0 if str(state) == "success" else 1
