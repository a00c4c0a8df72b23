"""Why the metadata database cannot be opened, in the user's words: a PostgreSQL database not created yet.

PostgreSQL answers a connection to a database that does not exist with the same error as any other
failed connection, in the server's language. So this asks the server itself (its ``postgres`` database,
with the same user): only when that works and the database is not in ``pg_database`` is it missing.
Shared by ``up`` (the key guard's first connection) and ``dag-test``; SQLAlchemy only, no Airflow.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url


def missing_database(url: str) -> str | None:
    """One line: the URL's PostgreSQL database does not exist on its server, and how to create it.

    None when the URL is not PostgreSQL, the server cannot be asked, or the database exists.
    """
    try:
        target = make_url(url)
    except sa.exc.ArgumentError:
        return None
    if not target.drivername.startswith("postgresql") or not target.database:
        return None
    engine = sa.create_engine(target.set(database="postgres"), connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            ).first()
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    if exists:
        return None
    host, port = target.host or "localhost", target.port or 5432
    user = f" -U {target.username}" if target.username else ""
    return (
        f'database "{target.database}" does not exist on the PostgreSQL server at {host}:{port}; create it: '
        f"createdb -h {host} -p {port}{user} {target.database} (or fix AIRFLOW__DATABASE__SQL_ALCHEMY_CONN "
        "in .env)."
    )
