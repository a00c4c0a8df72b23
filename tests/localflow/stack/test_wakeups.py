"""The scheduler and the dag-processor wake on PostgreSQL's notifications, or SQLite's datagrams.

What wakes a listener (a table shaped like Airflow's, on both databases), a listener forked over, the
fallback, and native stacks whose scheduler would sleep for a minute between looks, yet run a DAG at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
import pytest
import sqlalchemy as sa

from localflow.polling import wait_until
from localflow.stack import executor, wakeups
from testkit.native_stack import RunningStack, components, running_stack

CHANNEL = "localflow_test"
SCRATCH = (("task_instance", "INSERT OR UPDATE", CHANNEL),)  # PostgreSQL: a channel of the test's own


@dataclass
class Database:
    """A scratch database with a table shaped like task_instance, and the channel its changes wake."""

    name: str
    engine: sa.Engine
    channel: str

    def listener(self) -> wakeups.Wakeup:
        return wakeups.Wakeup(self.channel, self.engine, SCRATCH)


@pytest.fixture(params=["PostgreSQL", "SQLite"])
def database(request, postgres, tmp_path, monkeypatch) -> Iterator[Database]:
    """PostgreSQL with the triggers, or SQLite with this process sending datagrams after its commits."""
    if request.param == "PostgreSQL":
        engine, channel = sa.create_engine(postgres.create()), CHANNEL
    else:
        monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))  # where the listener writes its port
        engine, channel = sa.create_engine(f"sqlite:///{tmp_path / 'airflow.db'}"), wakeups.SCHEDULER
        wakeups.send_on_commit()  # as the plugin does in every Airflow process on SQLite
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE task_instance (id int, state text, last_heartbeat_at int)"))
        connection.execute(sa.text("INSERT INTO task_instance VALUES (1, 'queued', 0)"))
    if request.param == "PostgreSQL":
        wakeups.ensure_triggers(engine, SCRATCH)
    yield Database(request.param, engine, channel)
    engine.dispose()


def execute(engine, statement: str) -> None:
    """One statement in its own transaction, committed: as another component would."""
    with engine.begin() as connection:
        connection.execute(sa.text(statement))


CHANGES = (  # what another component commits; whether it wakes the listener on PostgreSQL, on SQLite
    ("a new row", "INSERT INTO task_instance VALUES (2, NULL, 0)", True, True),
    ("a state change", "UPDATE task_instance SET state = 'running'", True, True),
    ("a state cleared", "UPDATE task_instance SET state = NULL", True, True),
    ("a heartbeat", "UPDATE task_instance SET last_heartbeat_at = last_heartbeat_at + 1", False, False),
    # SQLite's sender sees the statement, not the row: a rewrite wakes the scheduler once, for nothing.
    ("the same state again", "UPDATE task_instance SET state = state", False, True),
)


@pytest.mark.parametrize(
    ("change", "statement", "wakes_postgres", "wakes_sqlite"), CHANGES, ids=[case[0] for case in CHANGES]
)
def test_what_wakes_a_listener(database: Database, change, statement, wakes_postgres, wakes_sqlite):
    """Inserts and state changes wake the listener at commit; heartbeats do not."""
    wakes = wakes_postgres if database.name == "PostgreSQL" else wakes_sqlite
    wakeup = database.listener()
    try:
        assert wakeup.listen() is not None
        execute(database.engine, statement)
        assert wakeup.wait(10 if wakes else 1) is wakes, change
    finally:
        wakeup.close()


def test_a_rolled_back_change_wakes_nobody(database: Database):
    """Only what was committed wakes: the listener would find nothing new."""
    wakeup = database.listener()
    try:
        assert wakeup.listen() is not None
        with database.engine.connect() as connection:
            connection.execute(sa.text("UPDATE task_instance SET state = 'failed'"))
            connection.rollback()
        assert wakeup.wait(1) is False
        execute(database.engine, "UPDATE task_instance SET state = 'success'")
        assert wakeup.wait(10), "the commit after the rollback woke nobody"
    finally:
        wakeup.close()


@pytest.mark.parametrize("database", ["PostgreSQL"], indirect=True)
def test_triggers_are_made_once(database: Database):
    """Each component's start ensures the triggers: a second time changes nothing."""
    engine = database.engine
    wakeups.ensure_triggers(engine, SCRATCH)
    with engine.connect() as connection:
        count = connection.scalar(
            sa.text("SELECT count(*) FROM pg_trigger WHERE tgname = :name"), {"name": wakeups.TRIGGER}
        )
    assert count == 1


def test_a_forked_child_leaves_the_parents_listener_alone(database: Database):
    """A task's worker or a parsing process forked from a listening component must not end its session."""
    wakeup = database.listener()
    try:
        assert wakeup.listen() is not None
        child = os.fork()
        if child == 0:  # pragma: no cover - the child
            # What a child's exit does with what it inherited: free it (libpq's farewell to the server).
            os._exit(0 if wakeup.connection is None else 1)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child still held the parent's connection"
        execute(database.engine, "UPDATE task_instance SET state = 'success'")
        assert wakeup.wait(10), "the parent's listener stopped hearing after a fork"
    finally:
        wakeup.close()


def test_without_notifications_the_wait_is_short(postgres):
    """Nothing to wake the scheduler (a database that is away): it looks every 0.2 s, not Airflow's 1 s."""
    url = postgres.create().rsplit("/", 1)[0] + "/localflow_no_such_database"
    wakeup = wakeups.Wakeup(CHANNEL, sa.create_engine(url), SCRATCH)
    assert wakeup.listen() is None
    started = time.monotonic()
    assert wakeup.wait(30) is False
    assert time.monotonic() - started < 10  # far from the 30 s asked for


def retired(scheduler: psutil.Process) -> bool:
    """The scheduler has no executor worker left (forked children that exited)."""
    return not [child for child in scheduler.children() if "LocalExecutor" in " ".join(child.cmdline())]


@pytest.fixture(scope="module", params=["PostgreSQL", "SQLite"])
def slow_scheduler_stack(request, tmp_path_factory, postgres) -> Iterator[RunningStack]:
    """A stack on each database whose scheduler looks only every 60 s by itself.

    One per database for the module: the dag-processor's test below needs no other scheduler, and neither
    test changes what the other sees.
    """
    slow = {
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "60",
        # The scheduler's timers also end its sleep: the closest one is 30 s away here.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "60",
    }
    database_url = postgres.create() if request.param == "PostgreSQL" else None  # None: the default SQLite
    with running_stack(tmp_path_factory.mktemp("wakeups"), database_url, **slow) as stack:
        yield stack


def on_sqlite(stack: RunningStack) -> bool:
    return "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in stack.env


@pytest.mark.stack
def test_runs_do_not_wait_for_the_schedulers_idle_sleep(slow_scheduler_stack: RunningStack):
    """With a scheduler that looks only every 60 s by itself, runs still go from trigger to success at once.

    Each step of a run (start it, queue a task, see it finish) waits for the scheduler's next look; without
    the notifications this run would take minutes. The second run comes after the first run's executor
    workers, forked from the scheduler, have exited: the listening connection survives them.
    """
    stack = slow_scheduler_stack
    logs = stack.workspace / ".airflow" / "logs" / "components"
    for component, channel in (
        ("scheduler", wakeups.SCHEDULER),
        ("dag-processor", wakeups.DAG_PROCESSOR),
    ):
        text = (logs / f"{component}.log").read_text()
        by = "the workspace's datagrams" if on_sqlite(stack) else "the database's notifications"
        assert f"woken by {by} on {channel}" in text, component
    scheduler = components(stack)["scheduler"]
    for run in ("first run", "run after the workers exited"):
        run_id = stack.trigger("example_etl")
        started = time.monotonic()
        assert stack.wait_for_run("example_etl", run_id, timeout=300) == "success", run
        # Generous for a loaded machine, and far below the minutes of a scheduler left to its timers.
        assert time.monotonic() - started < 25, f"{run} waited for the scheduler's idle sleep"
        wait_until(lambda: retired(scheduler), executor.IDLE_TIMEOUT + 30, what="executor workers exited")


@contextlib.contextmanager
def listening_as_the_dag_processor(stack: RunningStack) -> Iterator[wakeups.Wakeup | socket.socket]:
    """What the dag-processor's channel receives while the block runs (its wait has ``wait``/``recv``).

    PostgreSQL: one more listener on its channel. SQLite: its port file points here instead, and back after.
    """
    if not on_sqlite(stack):
        wakeup = wakeups.Wakeup(
            wakeups.DAG_PROCESSOR, sa.create_engine(stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        )
        try:
            assert wakeup.listen() is not None
            yield wakeup
        finally:
            wakeup.close()
        return
    port_file = stack.workspace / ".airflow" / wakeups.WAKEUPS_DIR / wakeups.DAG_PROCESSOR
    its_port = port_file.read_text()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        port_file.write_text(str(receiver.getsockname()[1]))
        try:
            yield receiver
        finally:
            port_file.write_text(its_port)


@pytest.mark.stack
def test_a_reparse_request_notifies_the_dag_processor(slow_scheduler_stack: RunningStack):
    """The watcher's request (Airflow's REST call) reaches the dag-processor's channel at its commit."""
    stack = slow_scheduler_stack
    stack.api.wait_for_dags(["example_etl"], timeout=120)
    with listening_as_the_dag_processor(stack) as listener:
        token = stack.api.file_tokens("dags-folder")["example_etl.py"]
        assert stack.api.reparse(token) in (201, 409)
        if isinstance(listener, socket.socket):
            listener.settimeout(10)
            assert listener.recv(64), "no datagram for the reparse request"
        else:
            assert listener.wait(10), "no notification for the reparse request"


DUE_NOW = """
import datetime, sys, time
import sqlalchemy as sa
from localflow.stack import wakeups

if sys.argv[1] == "precise":
    wakeups.precise_now_on_sqlite()
engine = sa.create_engine(sys.argv[2])
runs = sa.Table("dag_run", sa.MetaData(), sa.Column("run_after", sa.DateTime))
runs.create(engine)
while not 0.1 < time.time() % 1 < 0.3:  # early in a second, so that the check below stays in it
    time.sleep(0.01)
with engine.begin() as connection:
    connection.execute(runs.insert().values(run_after=datetime.datetime.now(datetime.timezone.utc)))
time.sleep(0.05)
with engine.connect() as connection:  # the scheduler's question: which runs are due?
    print(connection.scalar(sa.select(sa.func.count()).where(runs.c.run_after <= sa.func.now())))
"""


@pytest.mark.parametrize(("now", "due"), [("precise", "1"), ("SQLite's own", "0")])
def test_a_run_triggered_mid_second_is_due_at_once_on_sqlite(tmp_path, now, due):
    """SQLite's CURRENT_TIMESTAMP has whole seconds: without milliseconds a new run waits for the next one."""
    result = subprocess.run(
        [sys.executable, "-c", DUE_NOW, now, f"sqlite:///{tmp_path / 'airflow.db'}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == due
