"""
### Example Postgres query

Runs a query through an Airflow connection and passes the result to the next task. It queries the
stack's PostgreSQL (connection `localflow_postgres`) when there is one: in the containers, and natively
when `.env` points the metadata database at PostgreSQL. Otherwise it falls back to `localflow_sqlite`, an
in-memory SQLite database that `airflow_settings.yaml` defines, so it also succeeds on a fresh clone with
nothing but Python. Define `localflow_postgres` in `airflow_settings.yaml` to query your own database.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

# The first one Airflow can find is queried.
CONN_IDS = ("localflow_postgres", "localflow_sqlite")


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    default_args={"owner": "localflow", "retries": 1},
    tags=["example", "postgres"],
)
def example_postgres_query():
    """Query a database through a connection and report the result."""

    @task(multiple_outputs=False)
    def query_server() -> dict[str, str]:
        """Ask the database who and where it is."""
        import contextlib
        import sqlite3

        from airflow.providers.postgres.hooks.postgres import PostgresHook
        from airflow.sdk import BaseHook

        try:
            from airflow.sdk.exceptions import AirflowNotFoundException
        except ImportError:  # Airflow 3.1 and older
            from airflow.exceptions import AirflowNotFoundException

        for conn_id in CONN_IDS:
            try:
                conn = BaseHook.get_connection(conn_id)
                break
            except AirflowNotFoundException:
                continue
        else:
            raise AirflowNotFoundException(f"none of {CONN_IDS} is defined: see airflow_settings.yaml")
        if conn.conn_type == "sqlite":
            with contextlib.closing(sqlite3.connect(conn.host)) as database:
                (version,) = database.execute("SELECT sqlite_version()").fetchone()
            return {"connection": conn_id, "version": f"SQLite {version}", "database": conn.host}
        version, database = PostgresHook(postgres_conn_id=conn_id).get_first(
            "SELECT version(), current_database()"
        )
        return {"connection": conn_id, "version": version, "database": database}

    @task
    def report(server: dict[str, str]) -> None:
        """Log what the query found."""
        print(f"Connected to {server['database']} through {server['connection']}: {server['version']}")

    report(query_server())


example_postgres_query()
