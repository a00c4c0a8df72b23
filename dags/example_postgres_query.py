"""
### Example Postgres query

Runs a query on PostgreSQL through the Airflow connection `localflow_postgres` and passes the result to
the next task. The connection comes from the environment (`AIRFLOW_CONN_LOCALFLOW_POSTGRES`); set it in
`.env` to point at your own database. In the containers it defaults to the stack's own Postgres.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

CONN_ID = "localflow_postgres"


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    default_args={"owner": "localflow", "retries": 1},
    tags=["example", "postgres"],
)
def example_postgres_query():
    """Query the stack's PostgreSQL through a connection and report the result."""

    @task(multiple_outputs=False)
    def query_server() -> dict[str, str]:
        """Ask the database who and where it is."""
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        hook = PostgresHook(postgres_conn_id=CONN_ID)
        version, database = hook.get_first("SELECT version(), current_database()")
        return {"version": version, "database": database}

    @task
    def report(server: dict[str, str]) -> None:
        """Log what the query found."""
        print(f"Connected to {server['database']}: {server['version']}")

    report(query_server())


example_postgres_query()
