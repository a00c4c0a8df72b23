"""``python -m localflow.debugging.warm_runner``: the client (launch.json's ``pythonArgs``), ``--serve``, ``--stop``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from localflow.debugging.warm_runner import client, server


def main(argv: list[str]) -> int:
    """The client (what launch.json runs), ``--serve`` (the runner itself) or ``--stop``."""
    if argv[:1] == ["--serve"]:
        return server.serve(Path(argv[1]), argv[2])
    if argv == ["--stop"]:
        stopped = client.stop(dict(os.environ), os.getcwd())
        print("localflow: warm debug runner " + ("stopped" if stopped else "was not running"))
        return 0
    return client.client_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
