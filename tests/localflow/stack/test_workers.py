"""The Celery workers' names, the hostname their tasks record, and compose's count of failed checks."""

from __future__ import annotations

import socket

import pytest

from localflow.stack import workers


def test_names_and_nodenames():
    """Native workers are ``worker-N``; Celery knows them as ``worker-N@HOST``."""
    assert workers.names(2) == ["worker-1", "worker-2"]
    assert workers.nodename("worker-2") == f"worker-2@{socket.gethostname()}"
    assert workers.own_queue("worker-2@h") != workers.own_queue("worker-1@h")


def test_a_native_worker_s_tasks_record_its_name(monkeypatch):
    """The hostname callable gives the worker's name, or the machine's outside a native worker."""
    monkeypatch.delenv(workers.WORKER_NAME, raising=False)
    assert workers.hostname() == socket.getfqdn()
    monkeypatch.setenv(workers.WORKER_NAME, "worker-3")
    assert workers.hostname() == "worker-3"


# checks in a row (True: answered but took nothing), whether the last one stops the worker (limit 3)
STOP_CASES = [
    ([True, True], False),
    ([True, True, True], True),
    ([True, False, True, True], False),  # a passing check, or one without an answer, starts afresh
    ([True, True, True, True], False),  # the successor of a stopped worker starts afresh
    ([True, True, True, True, True, True], True),
]


@pytest.mark.parametrize(("failures", "stops"), STOP_CASES)
def test_compose_stops_a_worker_after_three_failures_in_a_row(monkeypatch, tmp_path, failures, stops):
    """``--stop-after 3`` stops the worker at the third failed check in a row, and only then."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    results = [workers.stop_after(failed, 3) for failed in failures]
    assert results[-1] is stops
