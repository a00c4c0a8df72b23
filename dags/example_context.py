"""
### Example task context

A task that takes `**context` to read the run's metadata (logical date, run id, params) and return a
label built from it. Use it to see what Airflow passes to a task, in the UI or under the debugger.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    params={"greeting": "hello"},
    default_args={"owner": "localflow", "retries": 1},
    tags=["example", "context"],
)
def example_context():
    """Read the run's context in a task and check what it built from it."""

    @task
    def describe_run(**context) -> str:
        """Build a label from the run's context."""
        run_id = context["run_id"]
        greeting = context["params"]["greeting"]
        label = f"{greeting} from {context['dag'].dag_id} ({run_id})"
        print(label)
        return label

    @task
    def check(label: str) -> None:
        """Fail loudly if the label lost its parts on the way."""
        if "example_context" not in label:
            raise ValueError(f"unexpected label {label!r}")

    check(describe_run())


example_context()
