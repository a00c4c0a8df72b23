"""The supervisor of the native stack: every component as a child process, restarted, stopped on Ctrl-C.

It starts the api-server, scheduler, dag-processor, triggerer and the dag watcher once ``up`` (``up.py``)
has prepared the workspace, and with the CeleryExecutor its Celery workers. A component that dies is
restarted with a growing delay, the way compose's ``restart: unless-stopped`` does, so a database restart
heals without a hand; a worker that no longer consumes its queue (``workers.py``) is restarted too, and so
is a scheduler, triggerer or dag-processor whose heartbeat stalls while it runs. While a disk of the stack
is full (``disk.py``) components that exit wait for space instead of restarting into it.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import psutil

from localflow import rest
from localflow.airflow_cli import airflow_command
from localflow.config import registry, remote_logs, settings
from localflow.errors import LocalflowError
from localflow.secrets.rules import ADMIN_PASSWORD
from localflow.stack import disk, ownership, preload, workers
from localflow.stopping import StopRequest

# The scheduler and triggerer would otherwise serve task logs on 0.0.0.0:8793/8794; natively the
# api-server reads the log files directly, so there is nothing to serve.
COMPONENTS: dict[str, list[str]] = {
    # X-Forwarded-Proto/-For are honoured from loopback only (uvicorn's FORWARDED_ALLOW_IPS default), where
    # a Codespace's forwarder connects from: docs/containers.md, "Codespaces".
    "api-server": ["api-server", "--proxy-headers"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
# Our own components: `python -m localflow ARGS`, supervised like Airflow's.
LOCALFLOW_COMPONENTS: dict[str, list[str]] = {
    "dag-watcher": ["watch"],  # reparses a saved DAG file at once (localflow/watcher/)
}
# Only while task logs go to the local S3 server (LOCALFLOW_REMOTE_LOGS, docs/logs.md): s3_server.py.
S3_SERVER: dict[str, list[str]] = {"s3-server": ["s3-server"]}
# Fork the Airflow components from this process after importing Airflow once (preload.py):
# they share its memory. `LOCALFLOW_PRELOAD=off` in .env starts each one as its own `airflow` process.
PRELOAD = "LOCALFLOW_PRELOAD"
SUPERVISE = "--supervise"  # `up` runs again with this once the workspace is prepared
ADOPT = "--adopt"  # the supervisor re-executed itself: the PIDs of its components follow (shed_airflow)
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
STOP_TIMEOUT = 20.0
TASK_STOP_TIMEOUT = 5.0  # a task process that ignores SIGTERM is killed after this
MAX_RESTART_DELAY = 30.0
# A component that ran this long before it exited is restarted as if for the first time (and said so);
# one that exits sooner again is in a loop: one line says so, then it restarts without a line each time.
STABLE_AFTER = 60.0
# A running component whose heartbeat (in /api/v2/monitor/health) is older than this (seconds, .env may
# change it; 0: never) no longer makes progress: it is killed and restarted. Checked each sixth of that,
# at least 5 s apart: each look is a line in the api-server's log (15 s: about 1.4 MB a day).
STALL_TIMEOUT = "LOCALFLOW_STALL_TIMEOUT"
DEFAULT_STALL_TIMEOUT = "90"
HEARTBEAT_CHECK_INTERVAL = 5.0
HEARTBEATS = {  # component: its entry in the health document, and the heartbeat's key there
    "scheduler": ("scheduler", "latest_scheduler_heartbeat"),
    "triggerer": ("triggerer", "latest_triggerer_heartbeat"),
    "dag-processor": ("dag_processor", "latest_dag_processor_heartbeat"),
}
# How long after a full disk was freed the supervisor tries to mark the task that filled it failed (the
# api-server may itself be restarting).
FAIL_TASK_TIMEOUT = 120.0
# Celery workers: how often each one's consumption is checked (.env may shorten it), how long after a
# start the first check waits, and how many failed checks in a row restart it.
HEALTH_INTERVAL = "LOCALFLOW_CELERY_HEALTH_INTERVAL"
HEALTH_START_GRACE = 20.0
HEALTH_RETRIES = 2
# A component's log past this size (MiB, .env may change it; 0: never) is rotated: copied to NAME.log.1,
# replacing the copy before, and emptied (rotate_log). So each component keeps at most about twice this.
LOG_MAX_MB = "LOCALFLOW_COMPONENT_LOG_MAX_MB"
DEFAULT_LOG_MAX_MB = "20"


@dataclass
class Health:
    """The consumption check of one Celery worker, run in a child process (it imports Celery)."""

    node: str
    interval: float
    check: subprocess.Popen | None = None
    next_check: float = 0.0
    failures: int = 0

    def reset(self, now: float) -> None:
        """A (re)started worker: forget what its predecessor failed, check after the start grace."""
        if self.check and self.check.poll() is None:
            self.check.kill()
            self.check.wait()
        self.check = None
        self.failures = 0
        self.next_check = now + max(self.interval, HEALTH_START_GRACE)

    def poll(self, env: Mapping[str, str], now: float) -> str | None:
        """Start a check when one is due, collect a finished one; what failed, once it failed too often."""
        if self.check is None:
            if now >= self.next_check:
                self.check = subprocess.Popen(
                    [sys.executable, "-m", "localflow.stack.workers", "check", self.node],
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                )
            return None
        if self.check.poll() is None:
            return None
        seen = self.check.stdout.read().strip().splitlines()
        code = self.check.returncode
        healthy = code == 0
        self.check.stdout.close()
        self.check = None
        self.next_check = now + self.interval
        self.failures = 0 if healthy else self.failures + 1
        if self.failures < HEALTH_RETRIES:
            return None
        self.failures = 0
        return seen[-1] if seen else f"its check exited with {code}"


@dataclass
class Component:
    """One supervised Airflow process."""

    name: str
    args: list[str]
    log_path: Path
    process: subprocess.Popen | preload.ForkedProcess | None = None
    restarts: int = 0
    next_start: float | None = None  # when a component that exited is due to restart
    env: dict[str, str] = field(default_factory=dict)  # added to the stack's environment for this one
    health: Health | None = None  # a Celery worker's consumption check
    kill_at: float | None = None  # a worker asked to stop (unhealthy) is killed if still running then
    started_at: float = 0.0  # monotonic
    quiet: bool = False  # in a restart loop, said once: no line per restart
    held: bool = False  # exited while a disk is full: restarted once space is freed
    stalled: bool = False  # killed for a stalled heartbeat, said so: its exit needs no line
    beat: str | None = None  # its latest heartbeat in the health document, as last seen
    beat_seen: float = 0.0  # when that heartbeat was first seen (monotonic)

    def start(self, env: Mapping[str, str], forked: bool = False) -> None:
        """Start (or restart) the process in its own session, output appended to its log file.

        ``forked``: fork it from this process, which has preloaded Airflow with ``env``.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.kill_at = None
        self.started_at = time.monotonic()
        self.beat = None
        if self.health:
            self.health.reset(time.monotonic())
        ours = self.name in LOCALFLOW_COMPONENTS or self.name in S3_SERVER  # not an Airflow subcommand
        if forked and not ours:
            self.process = preload.fork_airflow(self.args, self.log_path, self.env)
            return
        with self.log_path.open("ab") as log:
            command = [sys.executable, "-m", "localflow", *self.args] if ours else airflow_command(*self.args)
            self.process = subprocess.Popen(
                command,
                env={**env, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us, not them: we stop them in order
            )

    def signal(self, signum: int) -> None:
        """Signal the component's whole process group (it forks workers)."""
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def terminate(self) -> None:
        """Ask it to stop: a Celery worker by its main process alone, which then finishes its running
        tasks (Celery's warm shutdown); any other component by its whole process group."""
        if self.health is None:
            self.signal(signal.SIGTERM)
        elif self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)


@dataclass
class NativeStack:
    """The four components of a native run."""

    env: dict[str, str]
    components: list[Component] = field(default_factory=list)
    preloaded: bool = False  # Airflow imported here: components are forked from this process
    full: disk.FullDisk | None = None  # a disk of the stack found full, until space is freed
    task_to_fail: tuple[disk.TaskTry, float] | None = None  # the task that filled it, and until when to try
    next_heartbeat_check: float = 0.0
    next_fail_attempt: float = 0.0

    @property
    def log_dir(self) -> Path:
        """Where each component's output goes, under the stack's AIRFLOW_HOME."""
        return Path(self.env["AIRFLOW_HOME"]) / "logs" / "components"

    @functools.cached_property
    def local_s3_server(self) -> bool:
        """True when task logs go to the local S3 server, which this stack then runs (read once: it parses
        airflow_settings.yaml)."""
        return remote_logs.uses_local_server(
            self.env, registry.workspace(self.env) / settings.SETTINGS_FILE_NAME
        )

    @functools.cached_property
    def log_max_bytes(self) -> int:
        """The size past which a component's log is rotated (``LOG_MAX_MB``); 0: never."""
        return log_max_bytes(self.env)

    @functools.cached_property
    def stall_timeout(self) -> float:
        """Seconds of a stale heartbeat after which a running component is restarted (``STALL_TIMEOUT``)."""
        return stall_timeout(self.env)

    @functools.cached_property
    def api(self) -> rest.AirflowClient:
        """The stack's REST API, as admin (to mark failed the task that filled a disk)."""
        return rest.AirflowClient(
            settings.api_url(self.env), password=self.env.get(ADMIN_PASSWORD), timeout=10
        )

    def __post_init__(self) -> None:
        # The S3 server first: the first task's log upload must find its bucket.
        names = {**(S3_SERVER if self.local_s3_server else {}), **COMPONENTS, **LOCALFLOW_COMPONENTS}
        self.components = [
            Component(name, args, self.log_dir / f"{name}.log") for name, args in names.items()
        ]
        if settings.uses_celery(self.env):
            self.components += self.celery_workers()

    def what_starts(self) -> str:
        """The components ``up``'s first line names: Airflow's, the local S3 server, the Celery workers."""
        names = [*COMPONENTS, *(["the local S3 server"] if self.local_s3_server else [])]
        if found := [component.name for component in self.components if component.health]:
            names.append(f"Celery worker{'s' if len(found) > 1 else ''} {', '.join(found)}")
        return ", ".join(names)

    def celery_workers(self) -> list[Component]:
        """The Celery workers: each consumes Airflow's queue and its own (its health check's), and
        records its own name as the task instances' hostname."""
        interval = float(self.env.get(HEALTH_INTERVAL, "30"))
        default_queue = self.env.get("AIRFLOW__OPERATORS__DEFAULT_QUEUE", "default")
        found = []
        for name in workers.names(worker_count(self.env)):
            node = workers.nodename(name)
            args = ["celery", "worker", "--celery-hostname", node, "--skip-serve-logs"]
            args += ["--queues", f"{default_queue},{workers.own_queue(node)}"]
            env = {workers.WORKER_NAME: name, "AIRFLOW__CORE__HOSTNAME_CALLABLE": workers.HOSTNAME_CALLABLE}
            found.append(
                Component(name, args, self.log_dir / f"{name}.log", env=env, health=Health(node, interval))
            )
        return found

    def import_airflow_once(self) -> None:
        """Import Airflow here once, unless turned off, so that every component shares it.

        This process's environment must be ``self.env``: ``up`` starts the supervisor with it.
        """
        if registry.switch(self.env, PRELOAD):
            preload.preload(celery=settings.uses_celery(self.env))
            self.preloaded = True

    def start(self) -> None:
        """Start every component."""
        for component in self.components:
            component.start(self.env, forked=self.preloaded)

    def adopt(self, pids: Mapping[str, int]) -> None:
        """Take over the components a previous execution of this process started (same PID)."""
        for component in self.components:
            if pids.get(component.name):
                # Still this PID's child, forked or not: waitpid works for it.
                component.process = preload.ForkedProcess(pids[component.name])
                component.started_at = time.monotonic()
                if component.health:
                    component.health.reset(time.monotonic())

    def supervise_once(self) -> None:
        """Restart any component that exited, with exponential back-off, or hold it while a disk is full;
        restart one whose heartbeat stalled; rotate the logs grown too big."""
        now = time.monotonic()
        self.watch_disks(now)
        for component in self.components:
            if self.log_max_bytes and not self.full:  # the rotated copy would need space too
                rotate_log(component.log_path, self.log_max_bytes)
            code = component.process.poll() if component.process else None
            if code is None:
                self.check_health(component, now)
                continue
            if component.held:
                continue
            if component.next_start is None:
                # What the dead process forked (the scheduler's executor workers) lives on in its group;
                # end it, as compose does when it restarts a container, or every restart leaks workers.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(component.process.pid, signal.SIGKILL)
                if self.full:  # it would only exit again; the full disk's line said so
                    component.held = True
                    continue
                component.next_start = now + self.restart_delay(component, code, now)
            elif now >= component.next_start:
                component.next_start = None
                if self.full:
                    component.held = True
                    continue
                component.restarts += 1
                component.start(self.env, forked=self.preloaded)
        self.check_heartbeats(now)
        self.fail_the_task_that_filled_the_disk(now)

    def restart_delay(self, component: Component, code: int, now: float) -> float:
        """The back-off before restarting a component that exited; one line, unless it loops."""
        if now - component.started_at >= STABLE_AFTER:  # it ran a while: a new failure, not a loop
            component.restarts = 0
            component.quiet = False
        delay = min(2.0**component.restarts, MAX_RESTART_DELAY)
        if component.stalled:  # said when it was killed
            component.stalled = False
            return delay
        last = last_line(component.log_path)
        said = f"log: {component.log_path}" + (f"; its last line: {last}" if last else "")
        if component.restarts == 0:
            print(
                f"localflow: {component.name} exited (code {code}); restarting in {delay:.0f} s ({said})",
                flush=True,
            )
        elif not component.quiet:
            component.quiet = True
            print(
                f"localflow: {component.name} exited again (code {code}), {component.restarts + 1} times in a "
                f"row; restarting it with a growing delay, up to {MAX_RESTART_DELAY:.0f} s, without a line "
                f"for each restart until it runs {STABLE_AFTER:.0f} s ({said})",
                flush=True,
            )
        return delay

    def watch_disks(self, now: float) -> None:
        """Say once that a disk of the stack is full, stop the task that filled it; resume once freed."""
        if self.full is None:
            full = disk.find_full(self.env, disk.FULL_BELOW)
            if full is None:
                return
            writers = []
            if full.task:
                log = full.largest[0][1]
                stack_id = self.env.get(ownership.STACK_ID)
                writers = disk.writers_of(log, ownership.processes_of(stack_id or ""))
                if not writers and not disk.written_lately(log):  # an old log: not what filled the disk now
                    full = replace(full, task=None)
            self.full = full
            print(full.line(Path(self.env["AIRFLOW_HOME"])), flush=True)
            if full.task:
                self.task_to_fail = (full.task, math.inf)  # tried from now, until freed and a while
            # The log's writer (the executor worker running the task supervisor) blocks on the full disk
            # with the log open: deleting the log would free nothing while it lives.
            for process in writers:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            return
        if any(free < disk.FREED_AT for _folder, free, _total in disk.free_space(self.env)):
            return
        freed, self.full = self.full, None
        waiting = [component for component in self.components if component.held]
        for component in waiting:
            component.held = False
            component.next_start = now
            component.restarts = 0
            component.quiet = False
        if self.task_to_fail:
            self.task_to_fail = (self.task_to_fail[0], now + FAIL_TASK_TIMEOUT)
            self.next_fail_attempt = now
        usage = disk.free_bytes(freed.folder)
        names = ", ".join(component.name for component in waiting)
        print(
            f"localflow: space freed on {freed.mount} ({disk.size(usage[0] if usage else 0)} free); "
            f"the stack resumes{f': restarting {names}' if names else ''}.",
            flush=True,
        )

    def fail_the_task_that_filled_the_disk(self, now: float) -> None:
        """Mark failed the task whose log filled the disk, as the UI's "Mark as failed" does: no retry.

        Airflow would retry it (its heartbeat times out; retries left: up_for_retry), into the same wall.
        """
        # Tried while the disk is full too: the database may still take a write, and the sooner the task
        # is failed, the less the scheduler may have retried it (its executor reports the try ended).
        if self.task_to_fail is None or now < self.next_fail_attempt:
            return
        self.next_fail_attempt = now + 2.0
        task, until = self.task_to_fail
        if now > until:
            self.task_to_fail = None
            print(f"localflow: could not mark the {task} failed; it may run again.", flush=True)
            return
        try:
            status, body = self.api.request("GET", task.rest_path)
            if status != 200:
                return
            if body.get("try_number") != task.attempt or body.get("state") in ("failed", "success"):
                self.task_to_fail = None  # already ended, or cleared by the user
                return
            status, body = self.api.request("PATCH", task.rest_path, {"new_state": "failed"})
        except (rest.ApiError, http.client.HTTPException):
            return  # the api-server is not back yet
        if status == 200:
            self.task_to_fail = None
            print(
                f"localflow: marked the {task} failed, without retry: it filled the disk. Clear it in the UI "
                "(or fix it) to run it again.",
                flush=True,
            )

    def check_heartbeats(self, now: float) -> None:
        """Kill a running scheduler, triggerer or dag-processor whose heartbeat stalled (then restarted)."""
        if not self.stall_timeout or self.full or now < self.next_heartbeat_check:
            return
        self.next_heartbeat_check = now + max(HEARTBEAT_CHECK_INTERVAL, self.stall_timeout / 6)
        try:
            document = self.api.health()
        except http.client.HTTPException:  # an answer cut short: look again next time
            return
        if not document:
            return
        wall = datetime.now(timezone.utc)
        for component in self.components:
            entry = HEARTBEATS.get(component.name)
            if entry is None or not component.process or component.process.poll() is not None:
                continue
            if now - component.started_at < self.stall_timeout:
                continue
            beat = (document.get(entry[0]) or {}).get(entry[1])
            if not beat:
                continue
            # The same heartbeat seen for the whole timeout, by this process's clock: a machine that slept
            # (the monotonic clock stops meanwhile) finds every heartbeat old, but none stalled.
            if beat != component.beat:
                component.beat, component.beat_seen = beat, now
                continue
            if now - component.beat_seen < self.stall_timeout:
                continue
            try:
                age = (wall - datetime.fromisoformat(beat)).total_seconds()
            except (TypeError, ValueError):  # not a time we can read: no verdict
                continue
            if age > self.stall_timeout:
                print(
                    f"localflow: {component.name} runs but its heartbeat stopped {age:.0f} s ago (more than "
                    f"{STALL_TIMEOUT}={self.stall_timeout:g}); killing and restarting it (log: "
                    f"{component.log_path})",
                    flush=True,
                )
                component.stalled = True
                component.signal(signal.SIGKILL)

    def check_health(self, component: Component, now: float) -> None:
        """Restart a running Celery worker that failed its consumption check too often."""
        if component.health is None:
            return
        if component.kill_at is not None:
            if now >= component.kill_at:  # its warm shutdown waits on tasks that cannot report back
                component.signal(signal.SIGKILL)
            return
        failed = component.health.poll(self.env, now)
        if failed:
            print(f"localflow: {component.name} is unhealthy ({failed}); restarting it", flush=True)
            component.terminate()
            component.kill_at = now + STOP_TIMEOUT

    def stop(self) -> None:
        """SIGTERM every component, then SIGKILL what is still alive after the timeout.

        Then every other process of this stack: task processes run in process groups of their own, and
        outlive the executor that started them.
        """
        for component in self.components:
            component.terminate()
            if component.health:
                component.health.reset(time.monotonic())
        deadline = time.monotonic() + STOP_TIMEOUT
        for component in self.components:
            if component.process:
                try:
                    component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    component.signal(signal.SIGKILL)
                    component.process.wait()
        if stack_id := self.env.get(ownership.STACK_ID):
            ownership.end(ownership.processes_of(stack_id), timeout=TASK_STOP_TIMEOUT)


def _non_negative(env: Mapping[str, str], name: str, default: str, what: str) -> float:
    """``name``'s number of ``env``, at least 0; a mistake says how to fix it (``what``: its meaning)."""
    value = env.get(name, default).strip()
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0:  # also NaN
        raise LocalflowError(f"{name}={value!r} in .env: set {what} (default {default}).")
    return number


def log_max_bytes(env: Mapping[str, str]) -> int:
    """The size past which a component's log is rotated (``LOCALFLOW_COMPONENT_LOG_MAX_MB``); 0: never."""
    what = "the size in MiB past which a component's log is rotated, or 0 to never rotate"
    return int(_non_negative(env, LOG_MAX_MB, DEFAULT_LOG_MAX_MB, what) * 1024 * 1024)


def stall_timeout(env: Mapping[str, str]) -> float:
    """Seconds of a stale heartbeat after which a running component is restarted; 0: never."""
    what = (
        "the seconds after which a component whose heartbeat stopped is restarted, "
        "or 0 to never restart one for it"
    )
    return _non_negative(env, STALL_TIMEOUT, DEFAULT_STALL_TIMEOUT, what)


def last_line(path: Path, tail: int = 4096) -> str:
    """The last non-empty line of a component's log, shortened to fit a terminal line; '' if none."""
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - tail))
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return last if len(last) <= 200 else last[:197] + "..."


def rotate_log(path: Path, max_bytes: int) -> bool:
    """Copy the log to ``PATH.1`` and empty it once it is larger than ``max_bytes`` (logrotate's copytruncate).

    The component keeps writing through its file descriptor, opened to append, so its next line goes to
    the start of the emptied file. A line written between the copy's last read and the truncation is
    lost: a few microseconds once per rotation.
    """
    try:
        if path.stat().st_size <= max_bytes:
            return False
        with path.open("rb") as log, path.with_name(f"{path.name}.1").open("wb") as copy:
            shutil.copyfileobj(log, copy)
            os.truncate(path, 0)
    except FileNotFoundError:  # not started yet
        return False
    return True


def worker_count(env: Mapping[str, str]) -> int:
    """How many Celery workers the native stack runs (``LOCALFLOW_CELERY_WORKERS``, default 1)."""
    value = env.get(settings.CELERY_WORKERS, "1").strip()
    if not value.isdigit() or int(value) < 1:
        raise LocalflowError(
            f"{settings.CELERY_WORKERS}={value!r} in .env: set a number of workers, 1 or more."
        )
    return int(value)


def shed_airflow(stack: NativeStack, stopping: StopRequest) -> None:
    """Execute this supervisor afresh without the Airflow it imported, once the components are forked.

    Same PID, so the components stay its children and it adopts them (``ADOPT``). What it imported is by
    then only its own copy of pages every component has copied already (measured: about 25 MB private);
    without it the supervisor is a small Python process. The price: a component that dies is restarted
    on its own, as with ``LOCALFLOW_PRELOAD=off``, without sharing the others' memory (about 90 MB more,
    until the next ``up``). Ctrl-C and SIGTERM are held across the ``execve`` and handled after it.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    if stopping:  # asked to stop before the signals were held: stop in this execution
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return
    pids = {c.name: c.process.pid for c in stack.components if c.process}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(
        sys.executable,
        [sys.executable, "-m", "localflow", "up", SUPERVISE, ADOPT, json.dumps(pids)],
        stack.env,
    )


def supervise(args: list[str] | None = None, health_timeout: float = 120.0) -> int:
    """Start the components, report how to log in, and supervise until Ctrl-C or SIGTERM.

    ``args``: ``[ADOPT, JSON]`` when the supervisor re-executed itself (``shed_airflow``).
    """
    if "AIRFLOW_HOME" not in os.environ:  # not the environment `up` prepared
        raise LocalflowError(f"`up {SUPERVISE}` is started by `up` itself; run `python -m localflow up`.")
    env = dict(os.environ)
    stack = NativeStack(env)
    api = rest.AirflowClient(settings.api_url(env))

    stopping = StopRequest()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # held by shed_airflow(), if it ran
    try:
        if args and args[0] == ADOPT:
            stack.adopt(json.loads(args[1]))
        else:
            print(f"localflow: starting {stack.what_starts()} ...", flush=True)
            stack.import_airflow_once()
            if stack.preloaded:
                preload.name_slow_plugins()
            stack.start()
            if stack.preloaded:
                shed_airflow(stack, stopping)
        deadline = time.monotonic() + health_timeout
        while not stopping and not api.is_healthy():
            if time.monotonic() > deadline:
                raise LocalflowError(
                    f"Airflow did not become healthy within {health_timeout:.0f} s; "
                    f"see the logs in {stack.log_dir}."
                )
            stack.supervise_once()
            time.sleep(0.5)
        if not stopping:
            with contextlib.suppress(OSError):  # the stack is up when it can run a task
                api.warm_up_execution_api()
            print(
                f"\nAirflow is up: {settings.ui_url(env)}\n"
                f"  log in as {settings.ADMIN_USER!r} with the password in .env ({ADMIN_PASSWORD});\n"
                f"  `python -m localflow secrets get {ADMIN_PASSWORD}` prints it.\n"
                f"  DAGs: {env['AIRFLOW__CORE__DAGS_FOLDER']}   component logs: {stack.log_dir}\n"
                f"{remote_logs.summary(env, stack.local_s3_server)}"
                "  Press Ctrl-C to stop.\n",
                flush=True,
            )
        while not stopping:
            stack.supervise_once()
            time.sleep(0.5)
    finally:
        print("localflow: stopping ...", flush=True)
        stack.stop()
        print("localflow: stopped.", flush=True)
    return 0
