"""Debugger support: fast in-process runs under debugpy, safe ``**context``, tasks that wait for a debugger.

Four things, all through Airflow's own listener hooks (``on_task_instance_running`` and friends, called
in the process that runs the task, right around the task's ``execute``):

* Under a debugger, Python code runs several times slower while it is traced. ``dag-test`` sets Airflow up
  with tracing off and turns it on only while a task runs (``TracingListener``), so breakpoints in task
  code, operators and ``plugins/`` are hit and everything else runs at full speed.
* A task that fails under ``dag-test`` stops the debugger at the line that raised it (``stop_at``), as an
  uncaught exception would.
* ``make_context_inspectable`` makes the task context safe to expand in a debugger's Variables view
  (https://github.com/apache/airflow/issues/51861): the accessors behind ``context["conn"]``,
  ``context["var"]`` and ``context["macros"]`` answer every attribute with a lookup, so a debugger probing
  ``__iter__`` or ``__len__`` makes Execution API calls from its own thread while the task is stopped.
* ``LOCALFLOW_DEBUG_TASKS`` (set in ``.env``) makes matching tasks that the scheduler runs wait for a
  debugger on ``127.0.0.1:LOCALFLOW_DEBUG_PORT`` (5678) before they execute; ``plugins/localflow_plugin.py``
  registers the listener. The task's supervisor keeps heartbeating and refreshing its token meanwhile.
  Compose's Celery workers set ``LOCALFLOW_DEBUG_HOST=0.0.0.0``: the editor's container reaches the port
  over the compose network, where nothing publishes it (docs/debugging.md, "On a Celery worker in compose").
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

from pluggy import HookimplMarker

# Airflow's listener hook marker (``airflow.listeners.hookimpl`` is this same pluggy marker); made here so
# that importing this module does not import Airflow, which must happen untraced (see ``untraced``).
hookimpl = HookimplMarker("airflow")

DEBUG_TASKS = "LOCALFLOW_DEBUG_TASKS"
DEBUG_PORT = "LOCALFLOW_DEBUG_PORT"
DEBUG_WAIT = "LOCALFLOW_DEBUG_WAIT"
DEBUG_HOST_SETTING = "LOCALFLOW_DEBUG_HOST"  # set by compose on airflow-worker only
DEFAULT_PORT = 5678
DEFAULT_WAIT = 600.0  # seconds a task waits for a debugger before it runs without one
DEBUG_HOST = "127.0.0.1"  # loopback only: a debug port runs any code it is sent
ATTACH = "Airflow: attach to a scheduled task"  # .vscode/launch.json, for a task on loopback
ATTACH_WORKER = "Airflow: attach to a task on a Celery worker"  # for a task in compose's worker container

log = logging.getLogger(__name__)


def debugger() -> Any | None:
    """The debugpy module when a debugger client is connected to this process, else None."""
    debugpy = sys.modules.get("debugpy")
    if debugpy is None:
        return None
    try:
        return debugpy if debugpy.is_client_connected() else None
    except Exception:  # debugpy imported but not set up in this process (e.g. a test runner's adapter)
        return None


def trace_this_thread(enabled: bool) -> None:
    """Turn debugger tracing of the calling thread on or off; nothing happens without a debugger."""
    if (debugpy := debugger()) is not None:
        debugpy.trace_this_thread(enabled)


def stop_at(error: Any) -> None:
    """Show a task's exception in the debugger as an uncaught one: stopped at the line that raised it.

    Airflow catches what a task raises, so VS Code's "Uncaught Exceptions" breakpoint would never fire;
    debugpy's ``trigger_exception_handler`` stops as if it had, and honours that checkbox (unticked: no
    stop). The traceback is already unwound: locals can be inspected, not stepped through.
    """
    debugpy = debugger()
    if debugpy is not None and isinstance(error, BaseException) and error.__traceback__ is not None:
        debugpy.trigger_exception_handler(error)


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Run the block at full speed under a debugger: no breakpoints are hit in it."""
    trace_this_thread(False)
    try:
        yield
    finally:
        trace_this_thread(True)


class TracingListener:
    """Traces the thread that runs a task only while the task runs (dag.test() runs them one by one)."""

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        """Turn tracing on just before ``execute``."""
        trace_this_thread(True)

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        """Back to full speed between tasks."""
        trace_this_thread(False)

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        """Stop the debugger where the task failed, then back to full speed between tasks."""
        stop_at(error)
        trace_this_thread(False)

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        """Back to full speed between tasks."""
        trace_this_thread(False)


def _no_dunder_lookups(cls: type) -> None:
    lookup = cls.__getattr__  # type: ignore[attr-defined]
    if getattr(lookup, "_localflow_safe", False):
        return

    def __getattr__(self: Any, name: str) -> Any:
        # Protocol probes (__iter__, __len__, __array__ ...) are never connections, variables or macros.
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return lookup(self, name)

    __getattr__._localflow_safe = True  # type: ignore[attr-defined]
    cls.__getattr__ = __getattr__  # type: ignore[attr-defined]


def make_context_inspectable() -> None:
    """Make ``context["conn"]``, ``["var"]`` and ``["macros"]`` inspectable without Execution API calls.

    The same idea as the upstream fix proposed in apache/airflow#71430 for #51861: a debugger's protocol
    probes must not turn into connection or variable lookups. Normal attribute access is unchanged.
    """
    from airflow.sdk.execution_time import context

    for cls in (context.ConnectionAccessor, context.VariableAccessor, context.MacrosAccessor):
        _no_dunder_lookups(cls)


def _patterns(value: str) -> list[str]:
    return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]


def task_selected(spec: str, dag_id: str, task_id: str) -> bool:
    """Whether ``LOCALFLOW_DEBUG_TASKS=spec`` selects a task.

    ``spec`` is a comma-separated list of ``dag_id`` or ``dag_id.task_id`` shell patterns; ``1``, ``true``,
    ``yes`` and ``*`` select every task; empty, ``0``, ``false`` and ``no`` select none.
    """
    spec = spec.strip()
    if spec.lower() in {"", "0", "false", "no", "off"}:
        return False
    if spec.lower() in {"1", "true", "yes", "on", "*"}:
        return True
    return any(
        fnmatch.fnmatchcase(dag_id, pattern) or fnmatch.fnmatchcase(f"{dag_id}.{task_id}", pattern)
        for pattern in _patterns(spec)
    )


def _in_separate_task_process() -> bool:
    """True in a task process started by a supervisor (scheduler/executor), False inside dag.test()."""
    from airflow.sdk.execution_time import task_runner

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    return comms is not None and type(comms).__name__ != "InProcessSupervisorComms"


def debug_host() -> str:
    """The address a waiting task listens on: ``LOCALFLOW_DEBUG_HOST``, else loopback.

    Only compose's ``airflow-worker`` sets it (0.0.0.0): the editor runs in another container there, and
    the worker's own loopback is out of its reach.
    """
    return os.environ.get(DEBUG_HOST_SETTING, "").strip() or DEBUG_HOST


def wait_for_debugger(dag_id: str, task_id: str, port: int, wait: float) -> bool:
    """Open the debug port and block until a debugger has attached and configured, or ``wait`` passes."""
    # debugpy would log "frozen modules are being used, which may make the debugger miss breakpoints"
    # in every task it starts in: true only of breakpoints in the standard library's frozen modules
    # (os, codecs, ...), never of a DAG's or a plugin's. F5's launcher turns them off instead.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    import debugpy

    host = debug_host()
    try:
        debugpy.listen((host, port))
    except (RuntimeError, OSError) as error:  # another task holds the port, or listen() ran already
        log.warning(
            "localflow: %s.%s runs without a debugger: cannot listen on %d (%s)", dag_id, task_id, port, error
        )
        return False
    # Off loopback, the hostname too: with several workers in compose it is the one to connect to.
    where = f"{host}:{port}" if host == DEBUG_HOST else f"{host}:{port} of host {socket.gethostname()}"
    log.warning(
        'localflow: %s.%s waits up to %.0f s for a debugger on %s (VS Code: "%s")',
        dag_id,
        task_id,
        wait,
        where,
        ATTACH if host == DEBUG_HOST else ATTACH_WORKER,
    )
    timer = threading.Timer(wait, debugpy.wait_for_client.cancel)
    timer.daemon = True
    timer.start()
    debugpy.wait_for_client()
    timer.cancel()
    attached = debugpy.is_client_connected()
    log.warning("localflow: %s", "debugger attached" if attached else "no debugger came; running the task")
    return attached


class WaitForDebuggerListener:
    """Makes tasks selected by ``LOCALFLOW_DEBUG_TASKS`` wait for a debugger in their own process."""

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        """Called in the task process just before ``execute``: the place to open the debug port."""
        spec = os.environ.get(DEBUG_TASKS, "")
        dag_id, task_id = task_instance.dag_id, task_instance.task_id
        if not task_selected(spec, dag_id, task_id) or debugger() or not _in_separate_task_process():
            return
        port = int(os.environ.get(DEBUG_PORT) or DEFAULT_PORT)
        wait = float(os.environ.get(DEBUG_WAIT) or DEFAULT_WAIT)
        make_context_inspectable()
        if wait_for_debugger(dag_id, task_id, port, wait):
            trace_this_thread(True)
