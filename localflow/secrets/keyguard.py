"""The key guard: refuse to start with a Fernet key that cannot read what the database already holds.

Airflow reads ``[core] fernet_key`` only on first use, so every component starts and looks healthy with
the wrong key, and the damage shows later as ``InvalidToken`` or as connections that seem to be missing.
This check runs before the stack starts (native runner and compose ``airflow-init``): it tries the key on
every encrypted connection field and variable, with plain SQL so it needs no Airflow import.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import make_url

from localflow.database import missing_database
from localflow.errors import LocalflowError
from localflow.secrets.rules import FERNET_KEY

# (kind, table, value column, "is encrypted" flag column)
ENCRYPTED_COLUMNS = (
    ("connection", "connection", "password", "is_encrypted"),
    ("connection", "connection", "extra", "is_extra_encrypted"),
    ("variable", "variable", "val", "is_encrypted"),
)


def metadata_engine(env: Mapping[str, str]) -> sa.Engine:
    """The metadata database of ``env``, or one clear error for a URL that cannot be one."""
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    try:
        return sa.create_engine(url, connect_args=_connect_args(url))
    except (sa.exc.ArgumentError, ImportError, ValueError) as error:
        raise LocalflowError(
            f"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN is not a usable database URL: {error}"
        ) from None


def _connect_args(url: str) -> dict:
    return {"connect_timeout": 5} if url.startswith("postgresql") else {}


def encrypted_values(env: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """Every encrypted value in the metadata database as (kind, id, token); empty for a new database."""
    engine = metadata_engine(env)
    found: list[tuple[str, str, str]] = []
    try:
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            for kind, table, column, flag in ENCRYPTED_COLUMNS:
                if table not in tables:
                    continue
                key = "conn_id" if kind == "connection" else "key"
                rows = connection.execute(
                    sa.text(f"SELECT {key}, {column} FROM {table} WHERE {flag} AND {column} IS NOT NULL")
                )
                found.extend((kind, row[0], row[1]) for row in rows)
    except sa.exc.OperationalError as error:
        missing = missing_database(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        if missing:
            raise LocalflowError(missing) from None
        target = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        where = f"{target.host}:{target.port or 5432}" if target.host else target.database
        reason = str(error.orig).strip().splitlines()[0] if error.orig else "no answer"
        raise LocalflowError(
            f"cannot reach the metadata database at {where} ({reason}); start it, or fix "
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN in .env."
        ) from None
    finally:
        engine.dispose()
    return found


def undecryptable(env: Mapping[str, str]) -> Counter:
    """How many connections and variables the configured key cannot decrypt, by kind."""
    key = env.get(FERNET_KEY, "")
    values = encrypted_values(env)
    if not values:
        return Counter()
    fernet = MultiFernet([Fernet(part.strip().encode()) for part in key.split(",")]) if key else None
    failed: set[tuple[str, str]] = set()
    for kind, ident, token in values:
        try:
            if fernet is None:
                raise InvalidToken
            fernet.decrypt(token.encode())
        except InvalidToken:
            failed.add((kind, ident))
    return Counter(kind for kind, _ in failed)


def describe(counts: Counter) -> str:
    """``1 connection and 2 variables``."""
    return " and ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(counts.items()))


def check(env: Mapping[str, str]) -> None:
    """Raise with the way out when the key in force cannot decrypt what is stored."""
    counts = undecryptable(env)
    if counts:
        raise LocalflowError(
            f"{FERNET_KEY} cannot decrypt {describe(counts)} in the metadata database. "
            f"Put back the key they were encrypted with in .env, or rotate: set {FERNET_KEY}=NEW_KEY,OLD_KEY "
            "and run `python -m localflow rotate-fernet-key`."
        )


def generation_guard(env: Mapping[str, str]) -> Callable[[str], None]:
    """A ``secrets.ensure`` hook that forbids a new Fernet key when the database holds encrypted data."""

    def may_generate(name: str) -> None:
        if name != FERNET_KEY:
            return
        values = encrypted_values(env)
        if values:
            kinds = Counter(kind for kind, _, _ in values)
            raise LocalflowError(
                f"{FERNET_KEY} is missing from .env but the database holds {describe(kinds)} encrypted "
                "with a key; a new key could not read them. Put the old key back in .env."
            )

    return may_generate
