"""Container healthcheck of the dag-processor and the triggerer: is this container's job heartbeating?

``python -m localflow.container.healthcheck JOB_TYPE HOSTNAME`` asks what ``airflow jobs check --job-type JOB_TYPE
--hostname HOSTNAME`` asks (a running job of that type on this host whose last heartbeat is younger than
the component's health-check threshold), as one SQL query on the metadata database. The Airflow CLI
needs seconds of CPU just to start, over 30 s on a busy 2-core machine: longer than the healthcheck's
timeout, and Docker does not stop a check that timed out, so they piled up. This needs a fraction of one.
"""

from __future__ import annotations

import os
import sys

# Job type: Airflow's setting of its health-check threshold, and that setting's default (seconds).
THRESHOLDS = {
    "DagProcessorJob": ("AIRFLOW__DAG_PROCESSOR__HEALTH_CHECK_THRESHOLD", "30"),
    "TriggererJob": ("AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD", "30"),
}
QUERY = """
SELECT count(*) FROM job
WHERE job_type = %s AND hostname = %s AND state = 'running'
  AND latest_heartbeat > now() - make_interval(secs => %s)
"""


def alive_jobs(database_url: str, job_type: str, hostname: str, threshold: float) -> int:
    """How many running jobs of ``job_type`` on ``hostname`` heartbeated within ``threshold`` seconds."""
    import psycopg2

    # SQLAlchemy's URL (postgresql+psycopg2://...) as libpq reads it.
    dsn = "postgresql://" + database_url.split("://", 1)[1]
    connection = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute(QUERY, (job_type, hostname, threshold))
            return cursor.fetchone()[0]
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    """Exit 0 when exactly one job of the type is alive on the host, as ``airflow jobs check`` does."""
    if len(argv) != 2 or argv[0] not in THRESHOLDS:
        print(
            f"usage: python -m localflow.container.healthcheck {{{'|'.join(THRESHOLDS)}}} HOSTNAME",
            file=sys.stderr,
        )
        return 2
    job_type, hostname = argv
    setting, default = THRESHOLDS[job_type]
    count = alive_jobs(
        os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        job_type,
        hostname,
        float(os.environ.get(setting, default)),
    )
    if count != 1:
        print(f"{count} alive {job_type} on {hostname} (expected 1)", file=sys.stderr)
        return 1
    print(f"Found one alive {job_type}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
