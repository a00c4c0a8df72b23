"""``up``'s port pre-check agrees with the api-server: a listener is refused, a recent stop is not."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from localflow.errors import LocalflowError
from localflow.stack.up import check_port_free, port_is_free
from testkit.environment import free_port


@contextmanager
def listening(port: int) -> Iterator[None]:
    """Something listens on the port (another Airflow, or anything else)."""
    with socket.create_server(("127.0.0.1", port)):
        yield


@contextmanager
def just_stopped(port: int) -> Iterator[None]:
    """A server on the port served one connection and stopped: its side of it waits in TIME_WAIT."""
    with socket.create_server(("127.0.0.1", port)) as server:
        client = socket.create_connection(("127.0.0.1", port))
        connection, _ = server.accept()
        connection.close()  # the server closes first: TIME_WAIT is on the server's port
        client.close()
    yield


@contextmanager
def nothing(_port: int) -> Iterator[None]:
    yield


# (situation on the port, is up refused)
CASES = [(nothing, False), (just_stopped, False), (listening, True)]


@pytest.mark.parametrize(("situation", "refused"), CASES, ids=[case.__name__ for case, _ in CASES])
def test_port_precheck(situation: Callable, refused: bool):
    """Only a port something listens on stops `up`, with the command that starts on a free port instead
    (a fresh clone has no .env to edit yet)."""
    port = free_port()
    with situation(port):
        if refused:
            with pytest.raises(LocalflowError) as refusal:
                check_port_free("127.0.0.1", port, "AIRFLOW__API__PORT")
            said = str(refusal.value)
            offered = re.search(r"use a free port: AIRFLOW__API__PORT=(\d+) python3 -m localflow up \(", said)
            assert said.startswith(f"port {port} on 127.0.0.1 is already in use"), said
            assert offered and int(offered[1]) > port and port_is_free("127.0.0.1", int(offered[1])), said
        else:
            check_port_free("127.0.0.1", port, "AIRFLOW__API__PORT")
