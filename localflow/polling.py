"""The one polling helper: wait until a condition holds, or give up after a timeout with a clear message."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A condition did not hold in time; the message says what was awaited and what was seen last."""


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    *,
    interval: float = 0.5,
    what: str | Callable[[], str] = "the condition",
) -> T:
    """Call ``condition()`` every ``interval`` seconds until it returns something truthy, and return that.

    After ``timeout`` seconds raise ``WaitTimeout`` naming ``what`` (a callable is asked only then: it
    can read a log). The condition is always tried at least once, and once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            description = what() if callable(what) else what
            raise WaitTimeout(f"{description}: not within {timeout:g} s")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def seconds_until(condition: Callable[[], object], timeout: float, *, interval: float = 0.05) -> float:
    """How long ``condition()`` took to hold, or ``timeout`` when it never did (what benchmarks record)."""
    started = time.monotonic()
    try:
        wait_until(condition, timeout, interval=interval)
    except WaitTimeout:
        return timeout
    return time.monotonic() - started
