"""The Celery workers of the native stack and of compose: their names, and whether one still consumes.

A worker that lost its broker connection (a Redis restart) can go on answering ``celery inspect ping``
over Redis's pub/sub while it no longer takes anything from its queues (apache/airflow#63580), so a ping
proves nothing. ``consumes`` sends a message to the worker's own queue, which only it reads, and checks
that the worker took it; a worker whose pool slots are all busy is left alone, since it cannot take one.
The supervisor (natively) and compose's healthcheck run ``python -m localflow.stack.workers check``.

``hostname`` is loaded in every task process of a native worker: standard library only.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

WORKER_NAME = "LOCALFLOW_WORKER_NAME"  # set in each native worker's environment
# Each native worker records its own name as the task instances' hostname, so the UI and the REST API
# tell the workers apart; their logs are files in the shared workspace, read by the api-server.
HOSTNAME_CALLABLE = "localflow.stack.workers.hostname"
CHECK_TIMEOUT = 10.0  # how long a worker may take to pick the message up
FAILURES_FILE = "localflow-worker-check-failures"


def hostname() -> str:
    """The hostname a task instance records: the native worker's name, else the machine's."""
    return os.environ.get(WORKER_NAME) or socket.getfqdn()


def names(count: int) -> list[str]:
    """The names of ``count`` native workers: ``worker-1``, ``worker-2``, ..."""
    return [f"worker-{number}" for number in range(1, count + 1)]


def nodename(name: str) -> str:
    """Celery's name of a worker (``name@host``), what ``inspect`` and remote control address."""
    return f"{name}@{socket.gethostname()}"


def own_queue(node: str) -> str:
    """The queue only the worker ``node`` consumes (besides Airflow's): where its health check goes."""
    return f"localflow.ping.{node}"


def consumes(broker_url: str, node: str, timeout: float = CHECK_TIMEOUT) -> tuple[bool, bool, str]:
    """Whether the worker ``node`` takes a message from its own queue within ``timeout`` seconds.

    Returns (healthy, whether it answers remote control, what was seen). The message is Celery's built-in ``celery.accumulate``, which
    does nothing; it expires, so checks made while the worker is busy do not pile up.
    """
    import redis
    from celery import Celery

    app = Celery(set_as_current=False, broker=broker_url)
    app.conf.update(broker_connection_retry_on_startup=False, broker_connection_max_retries=0)
    queue = own_queue(node)
    client = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        app.send_task(
            "celery.accumulate", args=(uuid.uuid4().hex,), queue=queue, ignore_result=True, expires=60
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if client.llen(queue) == 0:
                return True, True, f"{node} took a message from {queue}"
            time.sleep(0.2)
        # Not taken: a worker whose every slot is busy takes nothing new (Airflow acknowledges late).
        inspect = app.control.inspect(destination=[node], timeout=3)
        active = (inspect.active() or {}).get(node)
        stats = (inspect.stats() or {}).get(node)
        if active is not None and stats and len(active) >= stats["pool"]["max-concurrency"]:
            return True, True, f"{node} is busy with {len(active)} tasks"
        answered = "answers remote control" if stats else "does not answer"
        return False, bool(stats), f"{node} took nothing from {queue} in {timeout:g} s and {answered}"
    finally:
        client.close()
        app.close()


def stop_after(failed: bool, limit: int) -> bool:
    """Count failed checks in a row (in the container's /tmp); True once there were ``limit``."""
    counter = Path(tempfile.gettempdir()) / FAILURES_FILE
    count = int(counter.read_text() or 0) + 1 if failed and counter.exists() else int(failed)
    counter.write_text(str(count if count < limit else 0))  # a stopped worker's successor starts afresh
    return count >= limit


def main(argv: list[str]) -> int:
    """``check NODENAME [--stop-after N]``: exit 0 when the worker consumes, 1 (one line) when it does not.

    ``--stop-after N`` (compose's healthcheck): after N checks in a row in which the worker answered
    remote control but took nothing (the trap above), stop the container's worker (SIGTERM to PID 1,
    compose's init, which passes it on: a warm shutdown); its restart policy starts a new one. Docker
    itself only marks a container unhealthy. A worker that does not answer at all is still starting, or
    cut off from Redis like everyone else: restarting it would not help.
    """
    if len(argv) not in (2, 4) or argv[0] != "check" or (len(argv) == 4 and argv[2] != "--stop-after"):
        print("usage: python -m localflow.stack.workers check NODENAME [--stop-after N]", file=sys.stderr)
        return 2
    broker_url = os.environ.get("AIRFLOW__CELERY__BROKER_URL", "redis://redis:6379/0")
    try:
        healthy, answers, seen = consumes(broker_url, argv[1])
    except Exception as error:  # the broker is down: the worker cannot consume either
        healthy, answers = False, False
        seen = f"cannot reach the broker: {error}"  # not its URL, which may hold a password
    if len(argv) == 4 and stop_after(not healthy and answers, int(argv[3])):
        seen += f"; {argv[3]} failed checks in a row: stopping the worker, to be restarted"
        os.kill(1, signal.SIGTERM)
    print(seen, flush=True)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
