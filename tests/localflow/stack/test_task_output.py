"""``print()`` inside a supervised task goes to the task's logger line by line (the stack test is in
tests/localflow/stack/test_ui.py); outside one, stdout is left alone."""

from __future__ import annotations

import io
import socket
import subprocess
import sys

import pytest

from localflow.stack.task_output import LinesToLog


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, line: str) -> None:
        self.lines.append(line)


@pytest.mark.parametrize(
    ("writes", "logged_before_close", "logged_after_close"),
    [
        (["one\n"], ["one"], ["one"]),
        (["one\ntwo\n"], ["one", "two"], ["one", "two"]),
        (["par", "tial\n"], ["partial"], ["partial"]),
        (["no end"], [], ["no end"]),
        (["\n"], [""], [""]),
    ],
)
def test_lines_are_logged_when_complete(writes, logged_before_close, logged_after_close):
    recorder = Recorder()
    stream = LinesToLog(io.StringIO(), recorder)
    for text in writes:
        assert stream.write(text) == len(text)
    assert recorder.lines == logged_before_close
    stream.close()
    assert recorder.lines == logged_after_close


def test_stream_answers_as_the_real_stdout_for_subprocesses():
    stream = LinesToLog(sys.__stdout__, Recorder())
    assert stream.fileno() == sys.__stdout__.fileno()
    assert not stream.isatty()


@pytest.mark.parametrize(("stdout_is_socket", "expected"), [(True, "True"), (False, "False")])
def test_only_a_supervised_task_is_changed(stdout_is_socket, expected):
    """Airflow's supervisor gives a task a socket as stdout; a terminal, pipe or file means dag.test()."""
    check = "from localflow.stack.task_output import under_task_supervisor; print(under_task_supervisor())"
    if stdout_is_socket:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            subprocess.run([sys.executable, "-c", check], stdout=theirs, check=True)
            theirs.close()
            assert ours.recv(100).decode().strip() == expected
    else:
        result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
        assert result.stdout.strip() == expected
