"""Airflow's LocalExecutor with workers forked when there is work and retired when there is none.

Airflow's forks all ``[core] parallelism`` workers at start and keeps them (about 20 MB each, idle most of
the day on a laptop). Here a worker is forked for a workload no idle worker can take, and all get
Airflow's own poison pill after ``IDLE_TIMEOUT`` seconds without work. Configured in ``airflow.env``; the
class keeps Airflow's name, so ``executor="LocalExecutor"`` and Airflow's own checks still match it.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
from typing import TYPE_CHECKING

from airflow.executors import local_executor
from airflow.executors.base_executor import BaseExecutor

from localflow import internals
from localflow.config import registry

if TYPE_CHECKING:
    from airflow.executors.workloads import ExecutorWorkload

# Long enough that a worker lives through the short pauses between the tasks of a run (the next task is
# queued within a scheduler loop or two), short enough that an idle stack has no workers.
IDLE_TIMEOUT = 5.0
# How long the scheduler waits for a retired worker to exit. An idle worker reads its pill at once; one
# that does not exit in time is left to finish and reaped later, so the scheduler loop never stalls.
RETIRE_JOIN_TIMEOUT = 1.0
# Switched on in .env: every task log line is also copied to the scheduler's output, as Airflow's
# own LocalExecutor does for a log collector that reads it (docs/logs.md). Off: each line is written once.
TASK_LOGS_TO_STDOUT = "LOCALFLOW_TASK_LOGS_TO_STDOUT"


def _run_worker_frozen(**kwargs) -> None:
    """Airflow's worker loop, after moving every inherited object out of reach of the collector.

    Its collections then do not write to (and so copy) the scheduler's pages. Airflow instead freezes in
    the scheduler around the fork and unfreezes afterwards, which would also hand the objects the native
    supervisor froze before forking the scheduler (``preload.py``) back to the collector, and copy them.
    """
    gc.freeze()
    write_task_logs_once()
    local_executor._run_worker(**kwargs)


def write_task_logs_once() -> None:
    """In this worker, a task's log lines go to its log file only, not also to the scheduler's output.

    Airflow 3.3.2's worker loop has each task supervisor copy every line of the task's log to its own
    logger too (``subprocess_logs_to_stdout=True``, apache/airflow#64067, for log collectors that read a
    container's output): natively that is ``.airflow/logs/components/scheduler.log``, where every
    ``print`` and every ``Returned value was: ...`` then took the disk a second time (in compose,
    Docker's log of the scheduler). ``TASK_LOGS_TO_STDOUT`` keeps Airflow's copy.
    """
    if registry.switch(os.environ, TASK_LOGS_TO_STDOUT):
        return
    if not internals.holds("airflow.executors.base_executor", "BaseExecutor.run_workload"):
        return  # before 3.3 the worker loop does not copy them
    run_workload = BaseExecutor.run_workload

    def run_workload_logged_once(workload, **kwargs):
        return run_workload(workload, **{**kwargs, "subprocess_logs_to_stdout": False})

    # Only this worker process's class (a fork of the scheduler's): the scheduler's is unchanged.
    BaseExecutor.run_workload = staticmethod(run_workload_logged_once)


def in_flight_entry(workload: ExecutorWorkload) -> tuple[object, object]:
    """A workload's key, and the state a worker reports when it picks it up (None: none)."""
    if internals.holds("airflow.executors.workloads.base", "BaseDagBundleWorkload.key"):
        return workload.key, workload.running_state
    # Before 3.3, as its worker loop reports them: a task by its instance's key, once, when it ends; a
    # callback (3.2) by its id, running first.
    callback = getattr(workload, "callback", None)
    if callback is not None:
        from airflow.utils.state import CallbackState

        return callback.id, CallbackState.RUNNING
    return workload.ti.key, None


class LocalExecutor(local_executor.LocalExecutor):
    """LocalExecutor with on-demand workers: none at start, forked for queued work, retired when idle."""

    def start(self) -> None:
        """Open the queues; no worker is forked yet (see ``_spawn_workers_with_gc_freeze``)."""
        # Workload key -> the state a worker reports when it picks the workload up (None: none). A key
        # leaves when any other state arrives: the workload has finished.
        self._in_flight: dict = {}
        self._retiring: dict[int, multiprocessing.Process] = {}
        self._idle_since: float | None = None
        super().start()

    def _process_workloads(self, workload_list: list[ExecutorWorkload]) -> None:
        # Recorded before Airflow's method queues them: it ends by asking for workers for them.
        for workload in workload_list:
            key, running_state = in_flight_entry(workload)
            self._in_flight[key] = running_state
        self._idle_since = None
        super()._process_workloads(workload_list)

    def change_state(self, key, state, info=None, remove_running=True) -> None:
        """Airflow's state change; a workload's final state also takes it out of ``_in_flight``."""
        super().change_state(key, state, info, remove_running)
        if key in self._in_flight and state != self._in_flight[key]:
            del self._in_flight[key]

    def _spawn_workers_with_gc_freeze(self, spawn_number: int) -> None:
        """Fork only the workers the queued workloads need, at most ``spawn_number``.

        Airflow calls this (with fork as the start method) from ``start()`` for ``parallelism`` workers,
        and whenever workloads wait, for all the missing ones. Each alive worker is busy with one
        workload in flight or free to take one, so the workloads in flight need that many workers.
        """
        # The scheduler often queues a run's next task before this executor has read the result of the
        # last one (the task reported its state to the API first): read it now, or its idle worker
        # would look busy and a second one would be forked.
        self._read_results()
        needed = min(self.parallelism, len(self._in_flight)) - len(self.workers)
        for _ in range(min(spawn_number, needed)):
            self._spawn_worker()

    def _spawn_worker(self) -> None:
        # Airflow's _spawn_worker with the worker loop wrapped by _run_worker_frozen.
        kwargs = {
            "logger_name": self.log.name,
            "input": self.activity_queue,
            "output": self.result_queue,
            "unread_messages": self._unread_messages,
        }
        if internals.holds(local_executor.__name__, "_run_worker", "parameters"):  # before 3.2: no teams
            kwargs["team_conf"] = self.conf
        process = multiprocessing.Process(target=_run_worker_frozen, kwargs=kwargs)
        process.start()
        self.workers[process.pid] = process

    def sync(self) -> None:
        """Airflow's sync (results in, dead workers reaped, workers for waiting work), then retire idle ones."""
        super().sync()
        self._retire_idle_workers()

    def _retire_idle_workers(self) -> None:
        for pid, process in list(self._retiring.items()):
            if not process.is_alive():
                process.close()
                del self._retiring[pid]
        if self._in_flight or not self.workers:
            self._idle_since = None
            return
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since < IDLE_TIMEOUT:
            return
        self._idle_since = None
        self.log.info("Retiring %d idle worker(s) after %.0f s without work", len(self.workers), IDLE_TIMEOUT)
        # One pill each; every worker is idle (nothing in flight), so each reads one and exits. Work
        # queued from now on lines up behind the pills and gets newly forked workers.
        for _ in self.workers:
            self.activity_queue.put(None)
        self._retiring.update(self.workers)
        self.workers = {}
        deadline = time.monotonic() + RETIRE_JOIN_TIMEOUT
        for pid, process in list(self._retiring.items()):
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is not None:
                process.close()
                del self._retiring[pid]

    def end(self) -> None:
        """Airflow's end, which also covers retired workers still alive: one more pill each, then join.

        A retired worker has a pill of its own waiting already; a spare pill is harmless, the queue is
        closed right after.
        """
        self.workers.update(self._retiring)
        self._retiring = {}
        super().end()
