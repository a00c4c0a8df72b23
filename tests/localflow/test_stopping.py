"""Ctrl-C while third-party code runs: raised as Python raises it, and remembered when it is swallowed."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

from localflow.stopping import RememberedInterrupt


@pytest.fixture
def restore_sigint():
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1)  # the handler runs in this thread before the sleep ends


@pytest.mark.usefixtures("restore_sigint")
@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN], ids=["default", "ignored"])
def test_ctrl_c_raises_keyboard_interrupt(inherited):
    signal.signal(signal.SIGINT, inherited)  # SIG_IGN: a script's background job (`cmd &`)
    interrupt = RememberedInterrupt()
    with pytest.raises(KeyboardInterrupt):
        ctrl_c()
    assert interrupt


@pytest.mark.usefixtures("restore_sigint")
def test_a_swallowed_ctrl_c_is_remembered():
    interrupt = RememberedInterrupt()
    assert not interrupt
    with contextlib.suppress(BaseException):  # as a library's bare `except: pass`
        ctrl_c()
    assert interrupt
