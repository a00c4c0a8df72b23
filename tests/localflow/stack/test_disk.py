"""A full disk under ``.airflow`` (a 40 MiB tmpfs), natively on SQLite, as issue #27 met it.

One stack for three cases, in order. A task prints 60 MB: the supervisor says in one line which disk is
full and what fills it, stops the task and fails it without retry, and once the log is deleted a new run
succeeds. A file that is no task's fills the disk to the last byte: a component that exits waits for space
instead of crash-looping, and resumes once it is deleted. A scheduler that stops making progress
(SIGSTOP) is restarted. `up` on a full disk stops at once, in one line. The database stays intact.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localflow.polling import wait_until
from testkit.native_stack import RunningStack, components, dag_source, run_localflow, running_stack

pytestmark = pytest.mark.stack

FILLER_DAG = '''"""Prints 60 MB: more than its disk holds."""
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["test"],
     default_args={"owner": "tests", "retries": 1, "retry_delay": timedelta(seconds=1)})
def disk_filler():
    @task
    def fill() -> None:
        line = "x" * 10_000
        for _ in range(6_000):
            print(line)

    fill()


disk_filler()
'''
STALL_TIMEOUT = 10


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory) -> Iterator[Path]:
    """A workspace whose ``.airflow`` is a 40 MiB tmpfs of its own."""
    workspace = tmp_path_factory.mktemp("small-disk")
    home = workspace / ".airflow"
    home.mkdir(mode=0o700)
    why = "mounting a tmpfs needs root" if os.geteuid() != 0 else ""
    if not why:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=40m,mode=0700", "tmpfs", str(home)],
            capture_output=True,
            text=True,
            check=False,
        )
        why = mounted.returncode and f"cannot mount a tmpfs: {mounted.stderr.strip()}"
    if why:
        if os.environ.get("CI"):  # CI runs as root: the test must run there
            pytest.fail(why)
        pytest.skip(why)
    try:
        yield workspace
    finally:
        subprocess.run(["umount", "--lazy", str(home)], check=False)


@pytest.fixture(scope="module")
def stack(small_disk: Path) -> Iterator[RunningStack]:
    """``up`` with the disk filler and a one-task DAG; a stalled heartbeat counts after STALL_TIMEOUT."""
    (small_disk / "dags").mkdir()
    (small_disk / "dags" / "disk_filler.py").write_text(FILLER_DAG)
    (small_disk / "dags" / "after_full.py").write_text(dag_source("after_full", "'step'"))
    with running_stack(small_disk, None, LOCALFLOW_STALL_TIMEOUT=str(STALL_TIMEOUT)) as running:
        yield running
    with sqlite3.connect(small_disk / ".airflow" / "airflow.db") as database:
        assert database.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def full_lines(stack: RunningStack, since: int) -> list[str]:
    """The lines of ``up``'s output past offset ``since`` that say a disk is full."""
    return [line for line in stack.output()[since:].splitlines() if " is full: " in line]


def said_restarts(output: str) -> dict[str, int]:
    """How many lines say each component exited."""
    names = re.findall(r"^localflow: (\S+) exited", output, flags=re.MULTILINE)
    return {name: names.count(name) for name in set(names)}


def test_a_task_that_fills_the_disk_is_named_stopped_and_not_retried(stack: RunningStack):
    home = stack.workspace / ".airflow"
    filler_run = stack.trigger("disk_filler")
    with stack.output_on_timeout():
        wait_until(lambda: full_lines(stack, 0), 60, what="the full disk said")
    logs = list((home / "logs").glob("dag_id=disk_filler/**/attempt=*.log"))
    for log in logs:  # what a user does: delete the log that fills the disk
        log.unlink()
    with stack.output_on_timeout():
        wait_until(lambda: "space freed" in stack.output(), 30, what="the freed space noticed")
        assert stack.wait_for_run("disk_filler", filler_run, timeout=60) == "failed"
    filler = stack.api.get(f"/api/v2/dags/disk_filler/dagRuns/{filler_run}/taskInstances/fill")
    assert (filler["state"], filler["try_number"]) == ("failed", 1), "the task that filled the disk ran again"

    output = stack.output()
    assert [log.name for log in logs] == ["attempt=1.log"]
    [line] = full_lines(stack, 0)
    assert f"the disk of {home} is full" in line and f"on {home} (tmpfs)" in line, line
    assert re.search(r" free of 40\.0 MiB", line), line
    assert "largest there: logs/dag_id=disk_filler/" in line and "attempt=1.log" in line, line
    assert "task fill of disk_filler" in line and "without retry" in line, line
    assert "marked the task fill of disk_filler" in output, output
    assert all(count <= 2 for count in said_restarts(output).values()), output


def test_a_disk_full_to_the_last_byte_holds_the_components_until_space_is_freed(stack: RunningStack):
    since = len(stack.output())
    ballast = stack.workspace / ".airflow" / "ballast.bin"
    fill(ballast)
    with stack.output_on_timeout():
        wait_until(lambda: full_lines(stack, since), 10, what="the full disk said")
    # SQLite still writes into its WAL's pages, so an idle stack may live on; a component that exits now
    # (killed here, as a full disk's error would end it) must wait for space, not loop.
    components(stack)["scheduler"].kill()
    time.sleep(4)  # a crash loop would have restarted it twice by now
    assert "scheduler" not in components(stack), "the scheduler was restarted into a full disk"
    ballast.unlink()
    with stack.output_on_timeout():
        wait_until(lambda: "the stack resumes: restarting" in stack.output()[since:], 30, what="resumed")
        assert stack.wait_for_run("after_full", stack.trigger("after_full"), timeout=60) == "success"

    output = stack.output()[since:]
    while_full = output.split("space freed")[0]
    [line] = full_lines(stack, since)
    assert "largest there: ballast.bin " in line and "0 B free of 40.0 MiB" in line, line
    assert re.search(r"the stack resumes: restarting .*scheduler", output), output
    assert said_restarts(while_full) == {}, (
        f"a component's restarts were said while the disk was full:\n{output}"
    )


def test_a_scheduler_that_stops_making_progress_is_restarted(stack: RunningStack):
    since = len(stack.output())
    os.killpg(components(stack)["scheduler"].pid, signal.SIGSTOP)
    with stack.output_on_timeout():
        wait_until(
            lambda: "heartbeat stopped" in stack.output()[since:], STALL_TIMEOUT + 20, what="the stall said"
        )
        wait_until(stack.api.is_healthy, 60, what="the restarted scheduler's heartbeat")
    lines = stack.output()[since:].splitlines()
    assert [line for line in lines if "scheduler" in line] == [
        line for line in lines if line.startswith("localflow: scheduler runs but its heartbeat stopped")
    ], lines


def fill(path: Path) -> None:
    """Write ``path`` until the disk is full."""
    with path.open("wb") as file, contextlib.suppress(OSError):  # ENOSPC ends it
        while True:
            file.write(b"\0" * 1024 * 1024)
            file.flush()


def test_up_on_a_full_disk_says_so_in_one_line_before_anything_starts(stack: RunningStack):
    ballast = stack.workspace / ".airflow" / "ballast.bin"
    fill(ballast)
    try:
        result = run_localflow(stack.env, "up")
    finally:
        ballast.unlink()
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = (result.stdout + result.stderr).strip().splitlines()
    assert line.startswith(f"localflow: the disk of {stack.workspace / '.airflow'} is full: 0 B free"), line
    assert (
        "largest there: ballast.bin " in line and "Free at least 8.0 MiB there, then start again" in line
    ), line
