"""Every private internal of Airflow and CPython the workspace relies on, each with the reason, in one list.

An Airflow upgrade may rename or drop any of them without notice; ``tests/localflow/test_internals.py``
checks each against what is installed and names the one that is gone. Add a row whenever code starts to
rely on something that is not public API (an underscore name, a module attribute set at run time, a
table the workspace reads with SQL, a method it overrides).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from dataclasses import dataclass

from localflow import releases


def _key(release: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", release)[:3])  # 3.3.0rc1: (3, 3, 0)


@dataclass(frozen=True)
class Internal:
    """``module``'s ``name`` (a dotted attribute path), what relies on it and why.

    ``kind``: ``attribute`` (it exists), ``assigned`` (a class assigns ``self.NAME`` in its code, so it is
    an instance attribute), ``declared`` (a module-level name that is annotated and set at run time),
    ``parameters`` (a callable that takes at least ``parameters``), or ``reads`` (a callable whose code
    contains ``text``, e.g. the private environment variable it reads).

    ``since``: the oldest supported release (``localflow/releases.py``) it holds in; it holds in every newer
    one up to ``until`` (when set) and in no other (``tests/localflow/test_internals.py`` checks both on each
    supported release).
    """

    module: str
    name: str
    used_by: str
    why: str
    kind: str = "attribute"
    parameters: tuple[str, ...] = ()
    text: str = ""
    since: str = releases.OLDEST
    until: str | None = None  # the newest release it holds in, for one a newer release dropped

    def holds_in(self, release: str) -> bool:
        """Whether it holds in ``release`` (X.Y.Z), by ``since`` (and ``until``)."""
        key = _key(release)
        return key >= _key(self.since) and (self.until is None or key <= _key(self.until))

    @property
    def releases(self) -> tuple[str, ...]:
        """The supported releases it holds in."""
        return tuple(release for release in releases.SUPPORTED if self.holds_in(release))

    @property
    def qualified_name(self) -> str:
        """``module.name``."""
        return f"{self.module}.{self.name}"


LOCAL_EXECUTOR = "airflow.executors.local_executor"
EXECUTION_API = "airflow.api_fastapi.execution_api.app"

INTERNALS = (
    # --- the on-demand LocalExecutor (stack/executor.py) ----------------------------------------------
    Internal(
        LOCAL_EXECUTOR,
        "_run_worker",
        "stack/executor.py",
        "a worker runs Airflow's own loop after gc.freeze()",
        "parameters",
        ("logger_name", "input", "output", "unread_messages", "team_conf"),
        since="3.2.2",
    ),
    Internal(
        LOCAL_EXECUTOR,
        "_run_worker",
        "stack/executor.py",
        "its workers copy every task log line to the scheduler's output: undone by write_task_logs_once",
        "reads",
        text="subprocess_logs_to_stdout=True",
        since="3.3.2",
    ),
    Internal(
        "airflow.executors.base_executor",
        "BaseExecutor.run_workload",
        "stack/executor.py",
        "wrapped in each worker to pass subprocess_logs_to_stdout=False",
        "parameters",
        ("workload", "subprocess_logs_to_stdout"),
        since="3.3.2",
    ),
    Internal(
        LOCAL_EXECUTOR,
        "LocalExecutor._spawn_workers_with_gc_freeze",
        "stack/executor.py",
        "overridden: fork only the workers queued work needs",
        since="3.1.8",
    ),
    Internal(
        LOCAL_EXECUTOR,
        "LocalExecutor._spawn_worker",
        "stack/executor.py",
        "overridden: the frozen worker loop",
    ),
    Internal(
        LOCAL_EXECUTOR,
        "LocalExecutor._process_workloads",
        "stack/executor.py",
        "extended: records the workloads in flight",
        since="3.1.8",
    ),
    Internal(
        LOCAL_EXECUTOR,
        "LocalExecutor._read_results",
        "stack/executor.py",
        "called before forking, so an idle worker is not counted as busy",
    ),
    *(
        Internal(LOCAL_EXECUTOR, f"LocalExecutor.{name}", "stack/executor.py", why, "assigned")
        for name, why in (
            ("activity_queue", "where workloads and the retiring pill go"),
            ("result_queue", "handed to each forked worker"),
            ("workers", "the live workers, by PID"),
            ("_unread_messages", "handed to each forked worker"),
        )
    ),
    Internal(
        "airflow.executors.workloads.base",
        "BaseDagBundleWorkload.key",
        "stack/executor.py",
        "a workload's key, by which the workloads in flight are recorded",
        since="3.3.2",
    ),
    Internal(
        "airflow.executors.workloads.base",
        "BaseDagBundleWorkload.running_state",
        "stack/executor.py",
        "the state a worker reports when it picks the workload up: the workloads in flight end on another",
        since="3.3.2",
    ),
    # --- dag-test's fast path (debugging/dagtest.py) --------------------------------------------------
    Internal(
        "airflow.dag_processing.dagbag",
        "BundleDagBag",
        "debugging/dagtest.py",
        "swapped during dag.test() for the bag already parsed",
        since="3.2.2",
    ),
    Internal(
        "airflow.models.dagbag",
        "BundleDagBag",
        "debugging/dagtest.py",
        "the same, where 3.1's dag.test() imports it from (without bundle_name)",
        since="3.1.8",
        until="3.1.8",
    ),
    Internal(
        "airflow.sdk.listener",
        "get_listener_manager",
        "debugging/dagtest.py",
        "the Task SDK's listeners, which dag.test()'s tasks call (before 3.2: airflow.listeners.listener's)",
        since="3.2.2",
    ),
    Internal(
        EXECUTION_API,
        "create_task_execution_api_app",
        "debugging/dagtest.py, stack/preload.py",
        "swapped for the app of execution_api.py (routes of the newest version only)",
        "parameters",
        ("lifespan",),
        since="3.3.2",
    ),
    Internal(
        "airflow.api_fastapi.app",
        "create_task_execution_api_app",
        "execution_api.py",
        "the api-server's app imported the factory by name: swapped there too",
    ),
    Internal(
        EXECUTION_API,
        "JWTReissueMiddleware",
        "execution_api.py",
        "the same middleware as stock",
        since="3.1.8",
    ),
    Internal(
        EXECUTION_API,
        "_inject_trace_context_dep",
        "execution_api.py",
        "the trace context dependency Airflow's factory adds",
        "parameters",
        ("routes", "mode"),
        since="3.3.2",
    ),
    Internal(EXECUTION_API, "logger", "execution_api.py", "unhandled errors logged as Airflow's app does"),
    Internal(EXECUTION_API, "lifespan", "debugging/dagtest.py", "the in-process API's lifespan"),
    Internal(
        EXECUTION_API,
        "CorrelationIdMiddleware",
        "debugging/dagtest.py",
        "the same middleware as stock",
        since="3.2.2",
    ),
    Internal(
        EXECUTION_API,
        "InProcessExecutionAPI.transport",
        "debugging/dagtest.py",
        "its app's event loop is made untraced",
    ),
    Internal(
        "airflow.api_fastapi.execution_api.routes",
        "execution_api_router",
        "debugging/dagtest.py",
        "the routes as written",
    ),
    Internal(
        "airflow.api_fastapi.common.exceptions",
        "init_error_handlers",
        "debugging/dagtest.py",
        "the same error handlers",
        since="3.3.2",
    ),
    Internal(
        "airflow.sdk.execution_time.supervisor",
        "in_process_api_server",
        "debugging/dagtest.py",
        "the in-process API built ahead of the run: one for the whole run (before 3.3, made so by dagtest.py)",
        "reads",
        text="@functools.lru_cache(maxsize=1)",
        since="3.3.2",
    ),
    Internal(
        "httpx._transports.wsgi",
        "WSGITransport.handle_request",
        "execution_api.py (Pep3333Paths)",
        "puts the path in PATH_INFO decoded, where PEP 3333 wants UTF-8 bytes as latin-1",
        "reads",
        text='"PATH_INFO": request.url.path',
    ),
    Internal(
        "a2wsgi.asgi",
        "build_scope",
        "execution_api.py (Pep3333Paths)",
        "decodes PATH_INFO as PEP 3333 says, which fails on httpx's decoded path",
        "reads",
        text='.encode("latin1").decode("utf8")',
    ),
    # --- debugger support inside task processes (debugging/support.py) --------------------------------
    Internal(
        "airflow.sdk.execution_time.task_runner",
        "SUPERVISOR_COMMS",
        "debugging/support.py",
        "tells a task the scheduler runs from one inside dag.test()",
        "declared",
    ),
    Internal(
        "airflow.sdk.execution_time.supervisor",
        "InProcessSupervisorComms",
        "debugging/support.py",
        "dag.test()'s comms, compared by class name",
    ),
    *(
        Internal(
            "airflow.sdk.execution_time.context",
            f"{accessor}.__getattr__",
            "debugging/support.py",
            "wrapped so a debugger's probes make no lookups (apache/airflow#51861)",
        )
        for accessor in ("ConnectionAccessor", "VariableAccessor", "MacrosAccessor")
    ),
    # --- the key guard's and the healthcheck's SQL (secrets/keyguard.py, container/healthcheck.py) ------
    *(
        Internal(
            "airflow.models.connection",
            f"Connection.{column}",
            "secrets/keyguard.py",
            "read with SQL from table connection",
        )
        for column in ("conn_id", "password", "is_encrypted", "extra", "is_extra_encrypted")
    ),
    *(
        Internal(
            "airflow.models.variable",
            f"Variable.{column}",
            "secrets/keyguard.py",
            "read with SQL from table variable",
        )
        for column in ("key", "val", "is_encrypted")
    ),
    *(
        Internal(
            "airflow.jobs.job", f"Job.{column}", "container/healthcheck.py", "read with SQL from table job"
        )
        for column in ("job_type", "hostname", "state", "latest_heartbeat")
    ),
    Internal(
        "airflow.configuration",
        "conf.configuration_description",
        "validation.py",
        "Airflow's known sections and options, and their defaults",
    ),
    # --- A DAG copied for a debug run (debugging/dagtest.py), apache/airflow#41160 ----------------------
    Internal(
        "airflow.sdk.definitions._internal.expandinput",
        "EXPAND_INPUT_EMPTY",
        "debugging/dagtest.py",
        "the sentinel a copied decorated mapped task must get back, or it no longer expands",
    ),
    Internal(
        "airflow.sdk.definitions._internal.types",
        "ArgNotSet",
        "debugging/dagtest.py",
        "given a __deepcopy__ returning itself while a DAG is copied: NOTSET is checked by identity (from 3.2"
        " the class of airflow.serialization.definitions.notset)",
    ),
    # --- A DAG file whose parsing process dies shows an import error (stack/parse_guard.py) -----------
    Internal(
        "airflow.dag_processing.manager",
        "DagFileProcessorManager._collect_results",
        "stack/parse_guard.py",
        "wrapped: a finished parse (a processor in _processors that is_ready) without a result gets one first",
        kind="reads",
        text="for file, proc in self._processors.items():",
    ),
    Internal(
        "airflow.sdk.execution_time.supervisor",
        "WatchedSubprocess._exit_code",
        "stack/parse_guard.py",
        "how the parsing process ended, for the import error's message",
        kind="assigned",
    ),
    # --- A DAG file's top-level lookups are a DAG warning (stack/parse_lookups.py) --------------------------
    Internal(
        "airflow.dag_processing.processor",
        "_parse_file",
        "stack/parse_lookups.py",
        "wrapped in the parsing process: the lookups made from the file's lines join the parse's warnings",
        kind="parameters",
        parameters=("msg", "log"),
    ),
    Internal(
        "sys", "_getframe", "stack/parse_lookups.py", "the lookup's frames: the DAG file's line that made it"
    ),
    # --- The scheduler and the dag-processor wake on the database's notifications (stack/wakeups.py) ----
    Internal(
        "airflow.jobs.scheduler_job_runner",
        "SchedulerJobRunner._run_scheduler_loop",
        "stack/wakeups.py",
        "its idle sleep is the module's time.sleep, which a waiting LISTEN replaces",
        kind="reads",
        text="time.sleep(min(self._scheduler_idle_sleep_time",
    ),
    Internal(
        "airflow.dag_processing.manager",
        "DagFileProcessorManager._run_parsing_loop",
        "stack/wakeups.py",
        "wrapped: the LISTEN joins the selector its loop waits on (self.selector, made before it starts)",
        kind="reads",
        text="self._service_processor_sockets(timeout=poll_time)",
    ),
    Internal(
        "airflow.dag_processing.manager",
        "DagFileProcessorManager._service_processor_sockets",
        "stack/wakeups.py",
        "a registered socket's data is (handler, on_close), the handler returning whether to keep it",
        kind="reads",
        text="socket_handler, on_close = key.data",
    ),
    Internal(
        "airflow.dag_processing.manager",
        "DagFileProcessorManager._service_processor_sockets",
        "stack/wakeups.py",
        "wrapped: its timeout is the idle loop's wait, longer while a wakeup listens",
        kind="parameters",
        parameters=("timeout",),
    ),
    *(
        Internal(
            "airflow.dag_processing.manager",
            f"DagFileProcessorManager.{name}",
            "stack/wakeups.py",
            f"the idle loop's longer wait only while it is empty ({what})",
        )
        for name, what in (
            ("_processors", "the running parsing processes"),
            ("_file_queue", "files to parse"),
        )
    ),
    *(
        Internal(
            module,
            f"{model}.{column}",
            "stack/wakeups.py",
            f"a trigger on table {table} notifies on insert or a change of this column",
        )
        for module, model, table, column in (
            ("airflow.models.dagrun", "DagRun", "dag_run", "state"),
            ("airflow.models.taskinstance", "TaskInstance", "task_instance", "state"),
            ("airflow.models.dagbag", "DagPriorityParsingRequest", "dag_priority_parsing_request", "id"),
        )
    ),
    Internal(
        "airflow.models.callback",
        "Callback.id",
        "stack/wakeups.py",
        "a trigger on table callback notifies the dag-processor of a DAG's callback to run",
        since="3.2.2",
    ),
    # --- The secrets backends a DAG file's top-level lookups reach, parsed by dag-test --------------------
    Internal(
        "airflow.sdk.execution_time.supervisor",
        "ensure_secrets_backend_loaded",
        "debugging/dagtest.py",
        "set to `server` while parsing, a top-level Variable.get() also finds the database's, as in the stack",
        kind="reads",
        text='"_AIRFLOW_PROCESS_CONTEXT") == "server"',
        since="3.1.8",
    ),
    # --- CPython: what a warm runner's fork (and F5 without one) does to be `python -m ...` -------------
    Internal("runpy", "_run_module_as_main", "debugging/warm_runner/protocol.py", "what `python -m` runs"),
    Internal(
        "threading", "_shutdown", "debugging/warm_runner/protocol.py", "the interpreter's exit: join threads"
    ),
    Internal(
        "atexit", "_run_exitfuncs", "debugging/warm_runner/protocol.py", "the interpreter's exit: handlers"
    ),
    # --- CPython: dag-test takes airflow.env's PYTHONWARNINGS after start (debugging/dagtest.py) -----
    Internal("warnings", "_processoptions", "config/settings.py", "what Python does with PYTHONWARNINGS"),
    # --- debugpy: its forks skip the environment report no log keeps (debugging/warm_runner) ----------
    Internal(
        "debugpy.common.log",
        "describe_environment",
        "debugging/warm_runner/server.py",
        "wrapped: built only when a log keeps info",
    ),
    Internal(
        "debugpy.common.log", "_levels", "debugging/warm_runner/server.py", "the levels its open logs keep"
    ),
)


@functools.cache  # asked per workload by the executor
def installed() -> str:
    """The installed Airflow release (X.Y.Z)."""
    from importlib import metadata

    return metadata.version("apache-airflow")


def holds(module: str, name: str, kind: str = "") -> bool:
    """Whether ``module``'s internal ``name`` (each of its rows, or those of ``kind``) holds in the installed
    Airflow, by ``since``: code that adapts to a release asks here, so a release's gaps are stated in this
    one list."""
    rows = [
        row
        for row in INTERNALS
        if row.module == module and row.name == name and (not kind or row.kind == kind)
    ]
    if not rows:
        raise KeyError(f"{module}.{name} has no row in localflow/internals.py")
    release = installed()
    return all(row.holds_in(release) for row in rows)


def problem(internal: Internal) -> str | None:
    """Why ``internal`` no longer holds in the installed packages, or None while it does."""
    try:
        target: object = importlib.import_module(internal.module)
    except ImportError as error:
        return f"cannot import {internal.module}: {error}"
    *owners, last = internal.name.split(".")
    for part in owners:
        target = getattr(target, part, None)
        if target is None:
            return f"{internal.module} has no {part}"
    if internal.kind == "assigned":
        found = any(
            f"self.{last} =" in inspect.getsource(cls)
            for cls in inspect.getmro(target)  # type: ignore[arg-type]
            if cls.__module__.startswith("airflow")
        )
    elif internal.kind == "declared":
        found = hasattr(target, last) or last in getattr(target, "__annotations__", {})
    else:
        found = hasattr(target, last)
    if not found:
        return f"{internal.qualified_name} is gone"
    if internal.kind == "reads" and internal.text not in inspect.getsource(getattr(target, last)):
        return f"{internal.qualified_name} no longer reads {internal.text}"
    if internal.kind == "parameters":
        taken = set(inspect.signature(getattr(target, last)).parameters)
        if missing := [name for name in internal.parameters if name not in taken]:
            return f"{internal.qualified_name} no longer takes {', '.join(missing)}"
    return None
