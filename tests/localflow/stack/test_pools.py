"""The pools of ``airflow_settings.yaml`` (Astro's layout) in the native stack: made at start, edits seen.

A task whose ``pool=`` names a pool that does not exist is never queued: without them, the run below
would wait for ever.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localflow.polling import wait_until
from testkit.native_stack import running_stack

IN_A_POOL = """
import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["tests"])
def in_a_pool():
    @task(pool="e2e_pool")
    def step() -> None:
        print("ran in e2e_pool")

    step()


in_a_pool()
"""


def astro_settings(slots: int) -> str:
    """An Astro project's airflow_settings.yaml with one pool of ``slots``."""
    return (
        "airflow:\n  connections: []\n  pools:\n"
        f"    - pool_name: e2e_pool\n      pool_slot: {slots}\n      pool_description: from the file\n"
        "  variables: []\n"
    )


@pytest.mark.stack
def test_the_file_pools_are_made_and_edits_are_seen(tmp_path: Path):
    """A DAG whose task uses the file's pool succeeds; the pool's edited slots reach the API, no restart."""
    workspace = tmp_path / "workspace"
    (workspace / "dags").mkdir(parents=True)
    (workspace / "dags" / "in_a_pool.py").write_text(IN_A_POOL)
    settings = workspace / "airflow_settings.yaml"
    settings.write_text(astro_settings(1))
    with running_stack(workspace, None) as stack:
        run_id = stack.trigger("in_a_pool")
        assert stack.wait_for_run("in_a_pool", run_id, timeout=90) == "success"
        status, pool = stack.api.request("GET", "/api/v2/pools/e2e_pool")
        assert status == 200 and (pool["slots"], pool["description"]) == (1, "from the file"), pool

        settings.write_text(astro_settings(3))

        def edited() -> bool:
            return stack.api.request("GET", "/api/v2/pools/e2e_pool")[1].get("slots") == 3

        with stack.output_on_timeout():
            wait_until(edited, 30, what="the edited pool in the API")
