"""The running stack leaves debug runs alone: F5 / ``dag-test`` runs its tasks itself, once.

``dag.test()`` writes an ordinary running DagRun (``triggered_by=TEST``) and runs its tasks in its own
process. A scheduler sharing the database would examine that run too, queue its scheduled task instances
to its own executor and run them a second time (``Cannot update Task Instance in invalid state``), fail
it on ``dagrun_timeout`` while a breakpoint holds it, or count it against ``max_active_runs``. Stock
Airflow has the same race; here the stack is up whenever the user debugs. Two halves:

* ``hide_test_runs`` (in every process that runs an Airflow job: scheduler, triggerer, dag-processor;
  installed by the workspace plugin, ``plugins/localflow_plugin.py``) adds ``triggered_by != TEST`` to each ORM query
  that reads DagRun rows, joins included. The api-server runs no job: the UI still lists debug runs.
* ``keep_triggers_local`` (in the debug process) gives its deferred tasks' triggers a queue
  (``[triggerer] queues_enabled``), which the stack's triggerer, serving only queue-less triggers, never
  picks up; ``dag.test()`` runs them inline.

Imports only Airflow and SQLAlchemy, and those only when called.
"""

from __future__ import annotations

import functools
import os
from typing import Any


@functools.cache  # once per process
def hide_test_runs() -> None:
    """Make this process's ORM queries pass over DagRuns made by ``dag.test()``."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import event, or_
    from sqlalchemy.orm import Session, with_loader_criteria

    test = DagRunTriggeredByType.TEST
    not_a_test_run = with_loader_criteria(
        DagRun,
        lambda run: or_(run.triggered_by.is_(None), run.triggered_by != test),
        include_aliases=True,
        track_closure_variables=False,  # `test` is a constant
    )

    def add_criteria(execute_state: Any) -> None:
        # Relationship loads stay as they are: an object the process already holds keeps its run.
        if execute_state.is_select and not execute_state.is_relationship_load:
            execute_state.statement = execute_state.statement.options(not_a_test_run)

    event.listen(Session, "do_orm_execute", add_criteria)


def keep_triggers_local() -> None:
    """Queue this process's triggers so that the stack's triggerer leaves them to ``dag.test()``."""
    os.environ["AIRFLOW__TRIGGERER__QUEUES_ENABLED"] = "True"
