"""The supervisor of the native stack: every component as a child process, restarted, stopped on Ctrl-C.

It starts the api-server, scheduler, dag-processor, triggerer and the dag watcher once ``up`` (``up.py``)
has prepared the workspace, and with the CeleryExecutor its Celery workers. A component that dies is
restarted with a growing delay, the way compose's ``restart: unless-stopped`` does, so a database restart
heals without a hand; a worker that no longer consumes its queue (``workers.py``) is restarted too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from localflow import rest
from localflow.airflow_cli import airflow_command
from localflow.config import registry, remote_logs, settings
from localflow.errors import LocalflowError
from localflow.secrets.rules import ADMIN_PASSWORD
from localflow.stack import ownership, preload, workers
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

    def start(self, env: Mapping[str, str], forked: bool = False) -> None:
        """Start (or restart) the process in its own session, output appended to its log file.

        ``forked``: fork it from this process, which has preloaded Airflow with ``env``.
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.kill_at = None
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
                if component.health:
                    component.health.reset(time.monotonic())

    def supervise_once(self) -> None:
        """Restart any component that exited, with exponential back-off; rotate the logs grown too big."""
        now = time.monotonic()
        for component in self.components:
            if self.log_max_bytes:
                rotate_log(component.log_path, self.log_max_bytes)
            code = component.process.poll() if component.process else None
            if code is None:
                self.check_health(component, now)
                continue
            if component.next_start is None:
                # What the dead process forked (the scheduler's executor workers) lives on in its group;
                # end it, as compose does when it restarts a container, or every restart leaks workers.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(component.process.pid, signal.SIGKILL)
                delay = min(2.0**component.restarts, MAX_RESTART_DELAY)
                component.next_start = now + delay
                print(
                    f"localflow: {component.name} exited (code {code}); restarting in {delay:.0f} s "
                    f"(log: {component.log_path})",
                    flush=True,
                )
            elif now >= component.next_start:
                component.restarts += 1
                component.next_start = None
                component.start(self.env, forked=self.preloaded)

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


def log_max_bytes(env: Mapping[str, str]) -> int:
    """The size past which a component's log is rotated (``LOCALFLOW_COMPONENT_LOG_MAX_MB``); 0: never."""
    value = env.get(LOG_MAX_MB, DEFAULT_LOG_MAX_MB).strip()
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = -1.0
    if not megabytes >= 0:  # also NaN
        raise LocalflowError(
            f"{LOG_MAX_MB}={value!r} in .env: set the size in MiB past which a component's log is "
            f"rotated (default {DEFAULT_LOG_MAX_MB}), or 0 to never rotate."
        )
    return int(megabytes * 1024 * 1024)


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
