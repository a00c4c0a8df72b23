"""The scheduler and the dag-processor wake on PostgreSQL's notifications (localflow/stack/wakeups.py).

The triggers on scratch tables shaped like Airflow's, a listener forked over, SQLite's fallback, and a
native stack whose scheduler would sleep for a minute between looks, yet runs a DAG at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psutil
import pytest
import sqlalchemy as sa

from localflow.polling import wait_until
from localflow.stack import executor, wakeups
from testkit.native_stack import RunningStack, components, running_stack

CHANNEL = "localflow_test"
SCRATCH = (("scratch", "INSERT OR UPDATE", CHANNEL),)


@pytest.fixture
def engine(postgres):
    """A fresh PostgreSQL database with one table shaped like task_instance, and its triggers."""
    engine = sa.create_engine(postgres.create())
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE scratch (id int, state text, last_heartbeat_at int)"))
        connection.execute(sa.text("INSERT INTO scratch VALUES (1, 'queued', 0)"))
    wakeups.ensure_triggers(engine, SCRATCH)
    yield engine
    engine.dispose()


def execute(engine, statement: str) -> None:
    """One statement in its own transaction, committed: as another component would."""
    with engine.begin() as connection:
        connection.execute(sa.text(statement))


CHANGES = (  # what another component commits, and whether it wakes the listener
    ("a new row", "INSERT INTO scratch VALUES (2, NULL, 0)", True),
    ("a state change", "UPDATE scratch SET state = 'running'", True),
    ("a state cleared", "UPDATE scratch SET state = NULL", True),
    ("a heartbeat", "UPDATE scratch SET last_heartbeat_at = last_heartbeat_at + 1", False),
    ("the same state again", "UPDATE scratch SET state = state", False),
)


@pytest.mark.parametrize(("change", "statement", "wakes"), CHANGES, ids=[change for change, _, _ in CHANGES])
def test_what_wakes_a_listener(engine, change, statement, wakes):
    """Inserts and state changes wake the listener at commit; heartbeats and rewrites do not."""
    wakeup = wakeups.Wakeup(CHANNEL, engine, SCRATCH)
    try:
        assert wakeup.listen() is not None
        execute(engine, statement)
        assert wakeup.wait(10 if wakes else 1) is wakes, change
    finally:
        wakeup.close()


def test_triggers_are_made_once(engine):
    """Each component's start ensures the triggers: a second time changes nothing."""
    wakeups.ensure_triggers(engine, SCRATCH)
    with engine.connect() as connection:
        count = connection.scalar(
            sa.text("SELECT count(*) FROM pg_trigger WHERE tgname = :name"), {"name": wakeups.TRIGGER}
        )
    assert count == 1


def test_a_forked_child_leaves_the_parents_listener_alone(engine):
    """A task's worker or a parsing process forked from a listening component must not end its session."""
    wakeup = wakeups.Wakeup(CHANNEL, engine, SCRATCH)
    try:
        assert wakeup.listen() is not None
        child = os.fork()
        if child == 0:  # pragma: no cover - the child
            # What a child's exit does with what it inherited: free it (libpq's farewell to the server).
            os._exit(0 if wakeup.connection is None else 1)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child still held the parent's connection"
        execute(engine, "UPDATE scratch SET state = 'success'")
        assert wakeup.wait(10), "the parent's listener stopped hearing after a fork"
    finally:
        wakeup.close()


@pytest.mark.parametrize("database", ["SQLite", "PostgreSQL, a database that is not there"])
def test_without_notifications_the_wait_is_short(tmp_path, postgres, database):
    """Nothing to wake the scheduler: it looks every 0.2 s, as before, not Airflow's 1 s or more."""
    if database == "SQLite":
        url = f"sqlite:///{tmp_path / 'airflow.db'}"
    else:
        url = postgres.create().rsplit("/", 1)[0] + "/localflow_no_such_database"
    wakeup = wakeups.Wakeup(CHANNEL, sa.create_engine(url), SCRATCH)
    assert wakeup.listen() is None
    started = time.monotonic()
    assert wakeup.wait(30) is False
    assert time.monotonic() - started < 10  # far from the 30 s asked for


def retired(scheduler: psutil.Process) -> bool:
    """The scheduler has no executor worker left (forked children that exited)."""
    return not [child for child in scheduler.children() if "LocalExecutor" in " ".join(child.cmdline())]


@pytest.fixture(scope="module")
def slow_scheduler_stack(tmp_path_factory, postgres) -> Iterator[RunningStack]:
    """A stack on PostgreSQL whose scheduler looks only every 60 s by itself.

    One for the module: the dag-processor's test below needs no other scheduler, and neither test changes
    what the other sees.
    """
    slow = {
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "60",
        # The scheduler's timers also end its sleep: the closest one is 30 s away here.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "60",
    }
    with running_stack(tmp_path_factory.mktemp("wakeups"), postgres.create(), **slow) as stack:
        yield stack


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
        assert f"woken by the database's notifications on {channel}" in text, component
    scheduler = components(stack)["scheduler"]
    for run in ("first run", "run after the workers exited"):
        run_id = stack.trigger("example_etl")
        started = time.monotonic()
        assert stack.wait_for_run("example_etl", run_id, timeout=300) == "success", run
        # Generous for a loaded machine, and far below the minutes of a scheduler left to its timers.
        assert time.monotonic() - started < 25, f"{run} waited for the scheduler's idle sleep"
        wait_until(lambda: retired(scheduler), executor.IDLE_TIMEOUT + 30, what="executor workers exited")


@pytest.mark.stack
def test_a_reparse_request_notifies_the_dag_processor(slow_scheduler_stack: RunningStack):
    """The watcher's request (Airflow's REST call) reaches the dag-processor's channel at its commit."""
    stack = slow_scheduler_stack
    database = stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    stack.api.wait_for_dags(["example_etl"], timeout=120)
    wakeup = wakeups.Wakeup(wakeups.DAG_PROCESSOR, sa.create_engine(database))
    try:
        assert wakeup.listen() is not None
        token = stack.api.file_tokens("dags-folder")["example_etl.py"]
        assert stack.api.reparse(token) in (201, 409)
        assert wakeup.wait(10), "no notification for the reparse request"
    finally:
        wakeup.close()
