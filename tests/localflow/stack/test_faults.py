"""Faults the native stack survives without a hand: killed components, a PostgreSQL restart, broken DAGs.

The supervisor in ``localflow/stack/supervisor.py`` restarts a component that dies (the native counterpart of the
compose restart policies), so a run in flight still completes.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from localflow.polling import wait_until
from testkit.environment import free_port
from testkit.native_stack import RunningStack, running_stack

pytestmark = pytest.mark.stack

SLOW_DAG = '''
"""A run long enough to break something in the middle of it."""
import time
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
    default_args={"owner": "tests", "retries": 3, "retry_delay": timedelta(seconds=2)},
)
def fault_slow():
    @task
    def first() -> int:
        return 1

    @task
    def wait(value: int) -> int:
        time.sleep(20)
        return value

    @task
    def last(value: int) -> None:
        assert value == 1

    last(wait(first()))


fault_slow()
'''

# A file that loops forever at parse time: the import inside the dag-processor is interrupted after
# [core] dagbag_import_timeout and recorded as an import error, as long as that timeout is shorter than
# [dag_processor] dag_file_processor_timeout (which kills the parsing process and records nothing).
LOOPING_DAG = ("broken_loops.py", "from airflow.sdk import dag\n\nwhile True:\n    pass\n")

# file name, content: each must become an import error while the other DAGs keep running
BROKEN_DAGS = (
    LOOPING_DAG,
    ("broken_syntax.py", "from airflow.sdk import dag\n\ndef oops(:\n    pass\n"),
    # The words "airflow" and "dag" make the dag-processor parse a file (its safe mode skips the rest).
    ("broken_raises.py", "from airflow.sdk import dag\n\nraise RuntimeError('cannot import me')\n"),
    (
        "broken_cycle.py",
        "import pendulum\nfrom airflow.sdk import DAG\nfrom airflow.providers.standard.operators.empty import EmptyOperator\n"
        "with DAG('broken_cycle', schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz='UTC'), tags=['t']):\n"
        "    a = EmptyOperator(task_id='a')\n    b = EmptyOperator(task_id='b')\n    a >> b >> a\n",
    ),
)


def component(running: RunningStack, name: str) -> psutil.Process:
    """The supervised process of one component (a direct child of the runner)."""
    for child in psutil.Process(running.process.pid).children():
        command = " ".join(child.cmdline())
        # The api-server retitles itself "airflow api_server -- host:...".
        if f"airflow {name}" in command or f"airflow {name.replace('-', '_')}" in command:
            return child
    raise AssertionError(f"no {name} process:\n{running.output()}")


def process_group(pid: int) -> int | None:
    """The process group of ``pid``, or None if it has gone."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def wait_task_running(running: RunningStack, dag_id: str, run_id: str, task_id: str) -> None:
    """Wait until a task instance of the run is running."""
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"

    def is_running() -> bool:
        status, body = running.api.request("GET", path)
        return status == 200 and body["state"] == "running"

    with running.output_on_timeout():
        wait_until(is_running, 120, what=f"{task_id} running")


def wait_healthy_again(running: RunningStack, timeout: float = 180) -> None:
    """Wait until every component reports healthy."""
    with running.output_on_timeout():
        wait_until(running.api.is_healthy, timeout, interval=1, what="every component healthy again")


@pytest.fixture(scope="module")
def slow_dag_stack(tmp_path_factory: pytest.TempPathFactory, postgres) -> Iterator[RunningStack]:
    """A stack on the shared PostgreSQL whose dags/ also holds the slow DAG.

    One for the module: each fault below ends with every component back, which its test waits for.
    """
    workspace = tmp_path_factory.mktemp("faults")
    (workspace / "dags").mkdir()
    (workspace / "dags" / "fault_slow.py").write_text(SLOW_DAG)
    with running_stack(workspace, postgres.create()) as running:
        yield running


def test_scheduler_killed_mid_run(slow_dag_stack: RunningStack):
    """kill -9 of the scheduler during a run: it is restarted and the run completes."""
    running = slow_dag_stack
    run_id = running.trigger("fault_slow")
    wait_task_running(running, "fault_slow", run_id, "wait")
    scheduler = component(running, "scheduler")
    scheduler.send_signal(signal.SIGKILL)
    assert running.wait_for_run("fault_slow", run_id, timeout=300) == "success"
    leftovers = [process for process in psutil.process_iter() if process_group(process.pid) == scheduler.pid]
    assert not leftovers, f"the killed scheduler's workers were left running: {leftovers}"
    assert "scheduler exited (code -9); restarting" in running.output()


def test_api_server_killed(slow_dag_stack: RunningStack):
    """kill -9 of the api-server: the UI and API come back by themselves."""
    running = slow_dag_stack
    component(running, "api-server").send_signal(signal.SIGKILL)
    # Seen down before it is back: the supervisor's restart takes seconds, polling catches the gap.
    wait_until(lambda: running.api.health() is None, 15, interval=0.1, what="the API down after kill -9")
    wait_healthy_again(running)
    assert running.api.login()
    assert "api-server exited (code -9); restarting" in running.output()


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of our own, so that restarting it disturbs no one else."""

    data: Path
    port: int
    bin_dir: Path

    def _ctl(self, *args: str) -> None:
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w", *args]
        subprocess.run(as_postgres(command), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        """Start the server on 127.0.0.1 only."""
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
        self._ctl("-o", options, "-l", str(self.data / "server.log"), "start")

    def stop(self) -> None:
        """Stop it (fast shutdown: clients are disconnected, as on a real restart)."""
        self._ctl("-m", "fast", "stop")

    @property
    def url(self) -> str:
        """SQLAlchemy URL of its postgres database."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the postgres user when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A throwaway PostgreSQL server (initdb in a temp dir), stopped and deleted afterwards."""
    bin_dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    assert bin_dirs, "PostgreSQL server binaries not found (Debian's postgresql package)"
    data = Path(tempfile.mkdtemp(prefix="localflow-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    server = PrivatePostgres(data, free_port(), Path(bin_dirs[-1]))
    subprocess.run(
        as_postgres([str(server.bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    server.start()
    try:
        yield server
    finally:
        subprocess.run(
            as_postgres([str(server.bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)


def test_postgres_restart_mid_run(tmp_path: Path, private_postgres: PrivatePostgres):
    """PostgreSQL down for 10 s during a run: every component recovers without a hand, the run completes."""
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "fault_slow.py").write_text(SLOW_DAG)
    with running_stack(tmp_path, private_postgres.url) as running:
        run_id = running.trigger("fault_slow")
        wait_task_running(running, "fault_slow", run_id, "wait")
        private_postgres.stop()
        time.sleep(10)
        private_postgres.start()
        wait_healthy_again(running)
        assert running.wait_for_run("fault_slow", run_id, timeout=300) == "success"


def test_broken_dag_files_are_import_errors_and_the_rest_runs(tmp_path: Path, postgres):
    """Syntax error, raise at import, endless loop, cycle: each is an import error; the rest runs."""
    (tmp_path / "dags").mkdir()
    for name, content in BROKEN_DAGS:
        (tmp_path / "dags" / name).write_text(content)
    broken_files = {name for name, _ in BROKEN_DAGS}
    good_dags = {"example_etl", "example_context", "example_postgres_query"}
    # Airflow's default import timeout is 30 s; a shorter one only makes the looping file fail sooner.
    with running_stack(tmp_path, postgres.create(), AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="10") as running:
        run_id = running.trigger("example_etl")
        assert running.wait_for_run("example_etl", run_id) == "success"
        seen: dict[str, list[str]] = {}

        def all_listed() -> tuple[dict[str, str], set[str]] | None:
            files = running.api.import_errors()
            dags = {dag["dag_id"] for dag in running.api.dags()}
            seen.update(import_errors=sorted(files), dags=sorted(dags))
            return (files, dags) if files.keys() >= broken_files and dags >= good_dags else None

        files, dags = wait_until(
            all_listed,
            180,
            interval=2,
            what=lambda: f"each broken file an import error, the rest DAGs ({seen})",
        )
        assert files.keys() == broken_files
        assert "DagBag import timeout" in files[LOOPING_DAG[0]]
        assert good_dags <= dags
