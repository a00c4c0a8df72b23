"""The warm runner's folder and socket cannot be redirected by another local user.

Its folder is made and checked without following links; one another user made first is passed over for
a folder in the home; and the client talks only to a runner of its own user, as the runner checks its
clients.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from localflow.debugging.warm_runner import client, protocol
from localflow.polling import wait_until

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making another user's files needs root")


@pytest.fixture
def shared_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A world-writable sticky temporary folder standing in for /tmp, and a home of our own."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return shared


def nothing(_path: Path, _home: Path) -> None:
    """A fresh machine."""


def link_to_our_private_folder(path: Path, home: Path) -> None:
    """Another user's trap: a link to one of our 0700 folders, e.g. ~/.ssh."""
    target = home / ".ssh"
    target.mkdir(parents=True, mode=0o700)
    path.symlink_to(target)


def folder_of_another_user(path: Path, _home: Path) -> None:
    """Another user made the folder first."""
    path.mkdir(mode=0o700)
    os.chown(path, NOBODY, NOBODY)


def our_folder_too_open(path: Path, _home: Path) -> None:
    """Ours, left readable by a umask or an old version."""
    path.mkdir(mode=0o755)
    path.chmod(0o755)


def a_file(path: Path, _home: Path) -> None:
    """Something that is not a folder at all."""
    path.write_text("")


# (what is at /tmp/localflow-warm-runner-UID, the runner's folder is there (True) or in the home (False))
CASES = [
    (nothing, True),
    (our_folder_too_open, True),
    (link_to_our_private_folder, False),
    pytest.param(folder_of_another_user, False, marks=as_root),
    (a_file, False),
]


@pytest.mark.parametrize(("situation", "in_tmp"), CASES, ids=lambda value: getattr(value, "__name__", None))
def test_runner_folder(shared_tmp: Path, situation: Callable[[Path, Path], None], in_tmp: bool):
    """A folder of ours, mode 0700, never behind a link; what another user left is passed over."""
    home = Path(os.environ["HOME"])
    at_tmp = shared_tmp / f"localflow-warm-runner-{os.getuid()}"
    situation(at_tmp, home)
    folder = protocol.runtime_dir()
    assert folder == (at_tmp if in_tmp else home / ".cache" / "localflow" / "warm-runner")
    assert not folder.is_symlink() and folder.stat().st_uid == os.getuid()
    assert folder.stat().st_mode & 0o777 == 0o700
    if situation is link_to_our_private_folder:
        assert list((home / ".ssh").iterdir()) == []


@as_root
def test_client_refuses_a_runner_of_another_user():
    """A socket served by another user's process: no connection, so nothing of ours is handed over."""
    folder = Path(tempfile.mkdtemp(prefix="localflow-other-user-"))  # pytest's tmp_path is ours alone
    folder.chmod(0o777)
    socket_path = folder / "runner.sock"
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys, time; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen();"
            "time.sleep(60)",
            str(socket_path),
        ],
        user=NOBODY,
        group=NOBODY,
    )
    try:
        wait_until(socket_path.exists, 30, interval=0.1, what="the other user's socket")
        with pytest.raises(protocol.Unavailable, match="served by another user's process"):
            client.connect(socket_path)
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)
