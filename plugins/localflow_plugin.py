"""Airflow plugin of the workspace: what localflow adds inside the stack's own Airflow processes.

* When an Airflow job starts (scheduler, triggerer, dag-processor): the job passes over the runs that F5 /
  ``dag-test`` makes, which run their tasks themselves (``localflow/debugging/isolation.py``), and a DAG
  file whose parsing process dies shows an import error (``localflow/stack/parse_guard.py``), a
  connection or variable a DAG file reads at its top level is a DAG warning at its line
  (``localflow/stack/parse_lookups.py``), and the
  scheduler and the dag-processor wake when there is work instead of polling (``localflow/stack/wakeups.py``;
  on SQLite, every process that loads the plugin sends the wakes after its commits),
  and the scheduler writes the pools of airflow_settings.yaml into the database (``localflow/stack/pools.py``).
* In each task the stack runs: ``print()`` lines reach the task's log in the order they were printed, so
  the log view shows them where they belong (``localflow/stack/task_output.py``).
* In each task: with ``LOCALFLOW_DEBUG_TASKS`` set in ``.env`` (e.g. ``example_etl.transform``,
  ``example_etl`` or ``*``) and the stack restarted, matching tasks wait in their own process for a
  debugger on 127.0.0.1:5678 before they execute; VS Code: "Airflow: attach to a scheduled task"
  (``localflow/debugging/support.py``). With the variable unset the listener does nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

try:
    from localflow.debugging import isolation, support
    from localflow.stack import parse_guard, parse_lookups, pools, task_output, wakeups
except ImportError:  # a component started outside the workspace root: the package is beside plugins/
    sys.path.append(str(Path(__file__).resolve().parent.parent))
    from localflow.debugging import isolation, support
    from localflow.stack import parse_guard, parse_lookups, pools, task_output, wakeups


# On SQLite, a change the scheduler or dag-processor waits for sends them a datagram (stack/wakeups.py).
wakeups.install_sender()


class JobStartListener:
    """Adds localflow's behaviour to an Airflow job's process when the job starts."""

    @hookimpl
    def on_starting(self, component: Any) -> None:
        """Airflow calls it when a job, or a task runner, starts in this process."""
        from airflow.jobs.job import Job

        if isinstance(component, Job):
            isolation.hide_test_runs()
            parse_guard.record_deaths()
            parse_lookups.record_lookups()
            wakeups.install()
            pools.install(component)


class TaskOutputListener:
    """Sends a supervised task's ``print()`` lines to its log while it runs (``task_output``)."""

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        """Airflow calls it in the task's process before the task executes."""
        task_output.log_prints()

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        """Airflow calls it in the task's process after the task succeeded."""
        task_output.stop_logging_prints()

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        """Airflow calls it in the task's process after the task failed."""
        task_output.stop_logging_prints()

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        """Airflow calls it in the task's process after the task was skipped."""
        task_output.stop_logging_prints()


class LocalflowPlugin(AirflowPlugin):
    """Registers the listeners: localflow's behaviour in jobs and tasks, tasks waiting for a debugger."""

    name = "localflow"
    listeners = [JobStartListener(), TaskOutputListener(), support.WaitForDebuggerListener()]  # noqa: RUF012 - Airflow's plugin interface
