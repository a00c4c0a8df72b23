"""Airflow plugin of the workspace: debug runs to themselves, and a debugger for scheduled tasks.

The stack's scheduler, triggerer and dag-processor pass over the runs that F5 / ``dag-test`` makes (they
run their tasks themselves): ``localflow/debugging/isolation.py``.

Set ``LOCALFLOW_DEBUG_TASKS`` in ``.env`` (e.g. ``example_etl.transform``, ``example_etl`` or ``*``) and
restart the stack: matching tasks wait in their own process for a debugger on 127.0.0.1:5678 before they
execute. VS Code: "Airflow: attach to a scheduled task". The logic is in ``localflow/debugging/support.py``; with the
variable unset the listener does nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from airflow.plugins_manager import AirflowPlugin

try:
    from localflow.debugging import isolation, support
except ImportError:  # a component started outside the workspace root: the package is beside plugins/
    sys.path.append(str(Path(__file__).resolve().parent.parent))
    from localflow.debugging import isolation, support


class LocalflowDebugPlugin(AirflowPlugin):
    """Registers the listeners: debug runs left alone, selected tasks waiting for a debugger."""

    name = "localflow_debug"
    listeners = [isolation.HideTestRunsListener(), support.WaitForDebuggerListener()]  # noqa: RUF012 - Airflow's plugin interface
