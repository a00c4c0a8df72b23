"""The scheduler and the dag-processor wake when there is work for them, instead of polling for it.

Idle, Airflow's scheduler looks for work every ``[scheduler] scheduler_idle_sleep_time`` (1 s) and the
dag-processor every second: a shorter interval makes runs and saves quick, and costs CPU all day. On
PostgreSQL, triggers on Airflow's tables send a notification (``NOTIFY``, delivered at commit) when a run
is created or a task instance changes state, which wakes the scheduler, and when a reparse is requested,
which wakes the dag-processor. Their waits return at once on one, and otherwise last as configured.
SQLite cannot notify: there the processes that commit such a change (the api-server, the triggerer) send
a datagram on loopback after the commit to the port the waiting process wrote into
``$AIRFLOW_HOME/wakeups/``. Where neither works, the scheduler looks every 0.2 s.

Installed by the workspace plugin (``plugins/localflow_plugin.py``): the waits by its ``on_starting``
listener, the datagrams' sender when it is loaded. Imports only Airflow, SQLAlchemy and the database
driver, and those only when called.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import select
import selectors
import socket
import sys
import time
import types
from pathlib import Path
from typing import Any

from localflow.config import registry

log = logging.getLogger(__name__)

SCHEDULER = "localflow_scheduler"
DAG_PROCESSOR = "localflow_dag_processor"
SWITCH = "LOCALFLOW_WAKEUPS"
POLL_WITHOUT_NOTIFICATIONS = 0.2  # seconds: the scheduler's idle sleep where the database cannot notify
RETRY_AFTER = 5.0  # seconds between attempts to listen again (the database away, no right to make triggers)

# The state is compared in the function, not in the triggers' WHEN or UPDATE OF: PostgreSQL refuses to
# change the type of a column that a trigger's definition names, which would fail a later Airflow migration.
FUNCTION = """
CREATE OR REPLACE FUNCTION localflow_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM pg_notify(TG_ARGV[0], TG_TABLE_NAME);
    ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
        PERFORM pg_notify(TG_ARGV[0], TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END $$
"""
TRIGGER = "localflow_wake"
WAKEUPS_DIR = "wakeups"  # under AIRFLOW_HOME: one file per channel, the port its waiting process reads
# What SQLAlchemy sends for the changes the triggers notify (state compared by the SET clause naming it).
CHANGE = re.compile(
    r"\s*(?:INSERT INTO (?P<inserted>\w+)|UPDATE (?P<updated>\w+) SET (?P<columns>.*?)(?: WHERE |$))",
    re.IGNORECASE | re.DOTALL,
)
STATE_SET = re.compile(r"(?:^|,)\s*state\s*=", re.IGNORECASE)
TRIGGERS = (  # table, the changes that count, the channel they wake
    ("dag_run", "INSERT OR UPDATE", SCHEDULER),
    ("task_instance", "INSERT OR UPDATE", SCHEDULER),
    ("dag_priority_parsing_request", "INSERT", DAG_PROCESSOR),
    ("callback", "INSERT", DAG_PROCESSOR),  # a DAG's callback to run (Airflow 3.2 on; not in 3.0, 3.1)
)
# Woken, the dag-processor's idle loop need not look every second (Airflow's): its other work is on timers
# of 30 s and more (bundle refresh, stale DAGs, the periodic reparse), a few seconds late at most.
DAG_PROCESSOR_IDLE_WAIT = 5.0


def ensure_triggers(engine: Any, triggers: tuple[tuple[str, str, str], ...] = TRIGGERS) -> None:
    """Create the notifying triggers where they are missing (table locks are taken only then)."""
    from sqlalchemy import text

    with engine.begin() as connection:
        # The scheduler and the dag-processor start together: one at a time.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": TRIGGER})
        connection.execute(text(FUNCTION))
        present = set(
            connection.scalars(
                text("SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = :name"), {"name": TRIGGER}
            )
        )
        for table, changes, channel in triggers:
            exists = connection.scalar(text("SELECT to_regclass(:table) IS NOT NULL"), {"table": table})
            if table not in present and exists:
                connection.execute(
                    text(
                        f"CREATE TRIGGER {TRIGGER} AFTER {changes} ON {table} "
                        f"FOR EACH ROW EXECUTE FUNCTION localflow_wake('{channel}')"
                    )
                )


class Wakeup:
    """A connection that listens on one channel; ``wait`` returns at a notification or at its timeout."""

    def __init__(
        self, channel: str, engine: Any = None, triggers: tuple[tuple[str, str, str], ...] = TRIGGERS
    ):
        self.channel = channel
        self.engine = engine  # SQLAlchemy's; None: Airflow's own
        self.triggers = triggers  # made, where missing, before listening
        self.connection: Any = None  # the driver's connection, once listening
        self.unavailable = False  # this database cannot notify: do not try again
        self.retry_at = 0.0  # after a failed attempt to listen (said once), when to try again

    def listen(self) -> Any:
        """The listening connection, opened (and the triggers made) on first use; None without one."""
        if self.connection is not None or self.unavailable:
            return self.connection
        if time.monotonic() < self.retry_at:
            return None
        if self.engine is None:
            from airflow import settings

            self.engine = settings.engine
        engine = self.engine
        if engine.dialect.name == "sqlite":
            return self._listen_for_datagrams()
        if (engine.dialect.name, engine.dialect.driver) != ("postgresql", "psycopg2"):
            self.unavailable = True
            return None
        try:
            ensure_triggers(engine, self.triggers)
            pooled = engine.raw_connection()
            connection = pooled.driver_connection
            pooled.detach()  # ours alone: the pool never hands it out nor resets it
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {self.channel}")
        except Exception as error:  # the database is away: plain intervals until the next attempt
            if not self.retry_at:
                log.warning("localflow: not woken by the database for now (%s)", error)
            self.retry_at = time.monotonic() + RETRY_AFTER
            return None
        self.retry_at = 0.0
        self.connection = connection
        _listening.add(self)
        log.info("localflow: woken by the database's notifications on %s", self.channel)
        return connection

    def _listen_for_datagrams(self) -> Any:
        """SQLite: a loopback socket whose port the senders read from ``$AIRFLOW_HOME/wakeups/CHANNEL``."""
        try:
            receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receiver.bind(("127.0.0.1", 0))
            receiver.setblocking(False)
            port_file(self.channel).parent.mkdir(exist_ok=True)
            _write_atomically(port_file(self.channel), str(receiver.getsockname()[1]))
        except OSError as error:
            log.warning("localflow: not woken by the workspace's datagrams (%s)", error)
            self.unavailable = True
            return None
        self.connection = receiver
        _listening.add(self)
        log.info("localflow: woken by the workspace's datagrams on %s", self.channel)
        return receiver

    def drain(self) -> bool:
        """Read the notifications that arrived; False when the connection has broken."""
        if isinstance(self.connection, socket.socket):
            with contextlib.suppress(BlockingIOError):
                while True:
                    self.connection.recv(64)
            return True
        try:
            self.connection.poll()
            self.connection.notifies.clear()
            return True
        except Exception as error:
            log.warning("localflow: the database's notifications stopped (%s)", error)
            return False

    def wait(self, timeout: float) -> bool:
        """Sleep for ``timeout`` seconds or until a notification arrives; True when one did."""
        connection = self.listen()
        if connection is None:  # nothing would wake it: look as often as without notifications
            time.sleep(min(timeout, POLL_WITHOUT_NOTIFICATIONS))
            return False
        if not select.select([connection], [], [], max(timeout, 0))[0]:
            return False
        if self.drain():
            return True
        self.close()  # the next wait opens a new one
        return False

    def close(self) -> None:
        """Stop listening (the next ``listen`` opens a new connection)."""
        _listening.discard(self)
        connection, self.connection = self.connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()


_listening: set[Wakeup] = set()


def port_file(channel: str) -> Path:
    """Where the process waiting on ``channel`` writes its datagram port (SQLite)."""
    return Path(os.environ["AIRFLOW_HOME"]) / WAKEUPS_DIR / channel


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    partial.replace(path)


def channels_woken_by(statement: str) -> set[str]:
    """The channels a committed ``statement`` wakes: as the PostgreSQL triggers, inserts and state changes."""
    match = CHANGE.match(statement)
    if not match:
        return set()
    table = match["inserted"] or match["updated"]
    return {
        channel
        for name, changes, channel in TRIGGERS
        if name == table
        and (match["inserted"] or ("UPDATE" in changes and STATE_SET.search(match["columns"])))
    }


def send(channels: set[str]) -> None:
    """One datagram to each channel's waiting process, where one is waiting."""
    if "AIRFLOW_HOME" not in os.environ:  # not a process of the workspace's stack
        return
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for channel in channels:
            try:
                sender.sendto(b"w", ("127.0.0.1", int(port_file(channel).read_text())))
            except FileNotFoundError:  # nobody waits on it (yet): nothing to wake
                continue
            except (OSError, ValueError) as error:
                log.debug("localflow: no datagram to %s (%s)", channel, error)


PENDING = "localflow_wakes"  # in a connection's info: the channels its open transaction will wake


def _note_change(connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
    if channels := channels_woken_by(statement):
        connection.info.setdefault(PENDING, set()).update(channels)


def _forget_changes(connection: Any) -> None:
    connection.info.pop(PENDING, None)


def _send_committed(_dbapi_connection: Any, record: Any) -> None:
    if channels := record.info.pop(PENDING, None):
        send(channels)


@functools.cache  # once per process
def send_on_commit() -> None:
    """SQLite: after a commit that a PostgreSQL trigger would notify, send the datagrams (every engine).

    Sent when the connection goes back to its pool, which a session's commit does after the database's
    commit: a woken process sees the change. A rolled-back change sends nothing.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    event.listen(Engine, "after_cursor_execute", _note_change)
    event.listen(Pool, "checkin", _send_committed)
    event.listen(Engine, "rollback", _forget_changes)


def _forget_in_child() -> None:
    """In a forked child (a task's worker, a parsing process), leave the parent's connections alone.

    Freeing the inherited connection would tell the server to end the parent's session; pointing its socket
    at /dev/null first makes that farewell go nowhere.
    """
    devnull = os.open(os.devnull, os.O_RDWR)
    for wakeup in list(_listening):
        os.dup2(devnull, wakeup.connection.fileno())
        wakeup.close()
    os.close(devnull)


os.register_at_fork(after_in_child=_forget_in_child)


@functools.cache  # once per process
def wake_scheduler() -> None:
    """The scheduler's idle sleep returns when a run or a task instance changes."""
    from airflow.jobs import scheduler_job_runner

    wakeup = Wakeup(SCHEDULER)
    # Its loop's only sleep is ``time.sleep(min(scheduler_idle_sleep_time, next timed event))`` while idle.
    scheduler_job_runner.time = types.SimpleNamespace(**{**vars(time), "sleep": wakeup.wait})


@functools.cache  # once per process
def wake_dag_processor() -> None:
    """The dag-processor's wait for its parsing processes also returns when a reparse is requested."""
    from airflow.dag_processing.manager import DagFileProcessorManager

    loop = DagFileProcessorManager._run_parsing_loop

    @functools.wraps(loop)
    def _run_parsing_loop(self: Any) -> Any:
        wakeup = Wakeup(DAG_PROCESSOR)
        connection = wakeup.listen()
        if connection is not None:

            def on_close(_: Any) -> None:  # then the manager closes it: Airflow's 1-s loop from then on
                self.selector.unregister(connection)
                _listening.discard(wakeup)

            # The selector the loop waits on is made by then; (handler, on_close) as Airflow registers its
            # parsing processes' sockets.
            self.selector.register(connection, selectors.EVENT_READ, (lambda _: wakeup.drain(), on_close))
        return loop(self)

    DagFileProcessorManager._run_parsing_loop = _run_parsing_loop


@functools.cache  # once per process
def precise_now_on_sqlite() -> None:
    """SQLite's ``CURRENT_TIMESTAMP`` (SQLAlchemy's ``func.now()``) has whole seconds; the times Airflow
    stores have microseconds. So a run triggered at 12:00:00.3 is not yet due (``run_after <= now()``) until
    12:00:01: the scheduler would start it up to a second late. Milliseconds instead, as Python's clock.
    """
    from sqlalchemy.ext.compiler import compiles
    from sqlalchemy.sql import functions

    @compiles(functions.now, "sqlite")
    def _now_with_milliseconds(_element: Any, _compiler: Any, **_: Any) -> str:
        return "STRFTIME('%Y-%m-%d %H:%M:%f', 'now')"


def _on_sqlite() -> bool:
    return os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "").startswith("sqlite")


@functools.cache  # once per process
def idle_dag_processor_waits_longer() -> None:
    """While woken by this process's wakeup, the dag-processor's idle wait lasts ``DAG_PROCESSOR_IDLE_WAIT``.

    Idle: no parsing process running, no file queued. A reparse request or a callback ends the wait.
    """
    from airflow.dag_processing.manager import DagFileProcessorManager

    service = DagFileProcessorManager._service_processor_sockets

    @functools.wraps(service)
    def _service_processor_sockets(self: Any, timeout: float | None = 1.0) -> Any:
        woken = any(wakeup.channel == DAG_PROCESSOR for wakeup in _listening)
        if timeout and woken and not self._processors and not self._file_queue:
            timeout = max(timeout, DAG_PROCESSOR_IDLE_WAIT)
        return service(self, timeout)

    DagFileProcessorManager._service_processor_sockets = _service_processor_sockets


def install_sender() -> None:
    """In every Airflow process on SQLite (the plugin, when loaded): changes send their datagrams."""
    if registry.switch(os.environ, SWITCH) and _on_sqlite():
        send_on_commit()


def install() -> None:
    """Both, where this process has imported their module: a job's own command imports its runner first.

    Only with ``LOCALFLOW_WAKEUPS=on`` (``localflow/config/airflow.env``; the benchmark's stock column unsets it).
    """
    if not registry.switch(os.environ, SWITCH):
        return
    if "airflow.jobs.scheduler_job_runner" in sys.modules:
        wake_scheduler()
        if _on_sqlite():
            precise_now_on_sqlite()
    if "airflow.dag_processing.manager" in sys.modules:
        wake_dag_processor()
        idle_dag_processor_waits_longer()
