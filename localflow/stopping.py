"""Ctrl-C or SIGTERM ask a long-running command (the supervisor, the watcher) to stop after its loop.

Its loop checks the request between steps and then cleans up, instead of being interrupted anywhere by
``KeyboardInterrupt``.
"""

from __future__ import annotations

import signal


class StopRequest:
    """False until SIGINT or SIGTERM arrives; installs the handlers when created."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._request)
        signal.signal(signal.SIGTERM, self._request)

    def _request(self, _signum: int, _frame: object) -> None:
        self.requested = True

    def __bool__(self) -> bool:
        return self.requested


class RememberedInterrupt:
    """Ctrl-C raises ``KeyboardInterrupt`` as Python's own handler does, and is also remembered.

    For a phase that runs third-party code (Airflow imported while a start prepares): a library's bare
    ``except:`` may swallow the exception, but not the request, which the caller checks afterwards.
    Installed also when SIGINT was inherited ignored (a script's background job, ``cmd &``).
    """

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._interrupt)

    def _interrupt(self, _signum: int, _frame: object) -> None:
        self.requested = True
        raise KeyboardInterrupt

    def __bool__(self) -> bool:
        return self.requested
