"""A task's ``print()`` lines in its log, in the order they were printed.

Airflow 3's task supervisor reads a task's stdout from a pipe and stamps each line when it reads it, while
the task's own log lines carry the time they were made. The log view sorts by time in milliseconds, so a
line printed just before a task returns often sorts after the "Post Execute" group marker and lands,
folded away, in that group (measured on 3.3.2: a task that prints and returns shows only "Done. Returned
value was ..."). Inside a supervised task this sends each printed line through the task's logger instead,
under the same logger name (``task.stdout``), stamped when printed. Output written to file descriptor 1
directly (subprocesses, C extensions) still goes the supervisor's way.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from typing import Any, TextIO

STDOUT_LOGGER = "task.stdout"  # the name Airflow's supervisor gives the lines it reads from the pipe


def under_task_supervisor() -> bool:
    """True in a task process run by Airflow's supervisor: its stdout is a socket the supervisor reads.

    Under ``dag.test()`` / F5 stdout is the user's terminal or the debug console, which must stay so.
    """
    try:
        return stat.S_ISSOCK(os.fstat(sys.__stdout__.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


class LinesToLog(io.TextIOBase):
    """A text stream that logs each complete line; a partial line waits for its end or for ``close``."""

    def __init__(self, original: TextIO, logger: Any) -> None:
        super().__init__()
        self.original = original
        self.logger = logger
        self.pending = ""

    def write(self, text: str) -> int:  # noqa: D102 - io.TextIOBase's
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.logger.info(line)
        return len(text)

    def close(self) -> None:
        """Log what is left of an unfinished line; the original stream stays open."""
        if self.pending:
            self.logger.info(self.pending)
            self.pending = ""
        super().close()

    # Code that hands sys.stdout to a subprocess, or asks what it is, gets the real one's answers.
    def fileno(self) -> int:  # noqa: D102
        return self.original.fileno()

    def isatty(self) -> bool:  # noqa: D102
        return False

    @property
    def encoding(self) -> str:  # noqa: D102
        return self.original.encoding

    def writable(self) -> bool:  # noqa: D102
        return True


def log_prints() -> None:
    """From now until ``stop_logging_prints``, ``print()`` in this supervised task goes to its log."""
    if isinstance(sys.stdout, LinesToLog) or not under_task_supervisor():
        return
    import structlog

    sys.stdout = LinesToLog(sys.stdout, structlog.get_logger(STDOUT_LOGGER))


def stop_logging_prints() -> None:
    """Give the task its stdout back, with any unfinished printed line logged first."""
    if isinstance(sys.stdout, LinesToLog):
        stream, sys.stdout = sys.stdout, sys.stdout.original
        stream.close()
