"""``python -m localflow.debugging.warm_runner``: the client (launch.json's ``pythonArgs``), ``--start``,
``--serve``, ``--stop`` and ``--direct`` (a run without a runner)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from localflow.debugging.warm_runner import client


def start_in_background() -> int:
    """``--start``: the runner F5 will use, started ahead (on folder open, in the dev container's start).

    One line says what happened. Exit status 1 only when a runner should start and cannot.
    """
    from localflow import bootstrap

    if not hasattr(socket, "send_fds"):
        print("localflow: no warm debug runner on this platform; F5 runs directly")
        return 0
    if not bootstrap.in_prepared_environment():  # before .venv exists (F5 would run directly too)
        print("localflow: warm debug runner not started: this interpreter is not the workspace's")
        return 0
    from localflow.config import settings
    from localflow.debugging.warm_runner import protocol
    from localflow.errors import LocalflowError

    cwd = os.getcwd()
    try:
        env = client.debug_session_environment(dict(os.environ), cwd, in_container=settings.IN_CONTAINER)
        print(f"localflow: {client.start(env, cwd)}")
    except (protocol.Unavailable, LocalflowError) as error:
        print(f"localflow: cannot start the warm debug runner: {error}")
        return 1
    return 0


def main(argv: list[str]) -> int:
    """The client (what launch.json runs), ``--start``, ``--serve`` (the runner itself), ``--stop`` or
    ``--direct`` (the client's run without a runner)."""
    if argv[:1] == ["--serve"]:
        from localflow.debugging.warm_runner import server

        return server.serve(Path(argv[1]), argv[2])
    if argv[:1] == [client.DIRECT]:  # the run without a runner (client.run_directly)
        from localflow.debugging.warm_runner import protocol

        os._exit(protocol.run_as_main(argv[1:]))
    if argv == ["--start"]:
        return start_in_background()
    if argv == ["--stop"]:
        stopped = client.stop(dict(os.environ), os.getcwd())
        if stopped > 1:
            print(f"localflow: {stopped} warm debug runners stopped (one per interpreter)")
        else:
            print("localflow: warm debug runner " + ("stopped" if stopped else "was not running"))
        return 0
    return client.client_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
