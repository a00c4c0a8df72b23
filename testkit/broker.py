"""A Redis server of the test's own (Debian's ``redis-server``), for the CeleryExecutor's tests.

Restarting the machine's Redis on 6379 would disturb everyone else using it; each test gets its own
server on a free loopback port, which also keeps parallel runs' queues apart.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from localflow.polling import wait_until
from testkit.environment import free_port


@dataclass
class PrivateRedis:
    """``redis-server`` on 127.0.0.1:``port``, its data in ``data`` (no periodic saves)."""

    data: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The broker URL the stack's ``.env`` points at."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers."""
        assert shutil.which("redis-server"), "redis-server not found (Debian: apt-get install redis-server)"
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--dir", str(self.data), "--appendonly", "no"]
        with (self.data / "server.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.answers, 20, interval=0.1, what=f"redis-server on port {self.port}")

    def answers(self) -> bool:
        """True when it replies to PING."""
        result = subprocess.run(
            ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True, check=False
        )
        return result.stdout.strip() == "PONG"

    def restart(self) -> None:
        """Shut it down as a restart does (saving its data, every client disconnected), start it again."""
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "shutdown", "save"], capture_output=True, check=False
        )
        assert self.process
        self.process.wait(timeout=30)
        self.start()

    def stop(self) -> None:
        """Stop it, by its PID."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A throwaway Redis for the duration of the block; stopped and deleted afterwards."""
    server = PrivateRedis(Path(tempfile.mkdtemp(prefix="localflow-redis-")), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.data, ignore_errors=True)
