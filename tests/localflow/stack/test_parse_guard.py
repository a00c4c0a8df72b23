"""Every broken DAG file shows an import error that names the file and the cause, in the native stack.

Airflow records an error for a file that raises; the rows here are the ways a file can fail without
raising, which stock Airflow 3.3 records nothing for (the DAG just goes missing) or records only slowly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localflow.polling import wait_until
from localflow.stack import parse_guard
from testkit.native_stack import running_stack

BROKEN_FILES = {
    # file name: (its content, text of the import error the UI must show)
    "exits_at_import.py": (
        "import os\nfrom airflow.sdk import dag\nos._exit(1)\n",
        "exited with code 1 before the file finished importing: does the file call os._exit()",
    ),
    "sys_exit_at_import.py": ("import sys\nfrom airflow.sdk import dag\nsys.exit(0)\n", "SystemExit: 0"),
    "killed_at_import.py": (
        "import os, signal\nfrom airflow.sdk import dag\nos.kill(os.getpid(), signal.SIGKILL)\n",
        "killed by SIGKILL (out of memory?)",
    ),
    "invalid_utf8.py": (b"from airflow.sdk import dag\nname = '\xff\xfe'\n", "utf-8"),
    "prints_20_mb.py": (
        "from airflow.sdk import dag\nprint('x' * 20_000_000)\nraise ValueError('after the print')\n",
        "after the print",
    ),
}


@pytest.mark.stack
def test_every_broken_file_shows_an_import_error_naming_it(tmp_path: Path):
    """Each broken file gets an import error in the REST API (the UI's banner) that says what happened."""
    workspace = tmp_path / "workspace"
    with running_stack(workspace, None) as stack:
        for name, (content, _) in BROKEN_FILES.items():
            path = workspace / "dags" / name
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)

        errors = stack.api.import_errors
        with stack.output_on_timeout():
            wait_until(
                lambda: set(BROKEN_FILES) <= set(errors()), 180, interval=1, what="an import error per file"
            )
        found = errors()
    for name, (_, expected) in BROKEN_FILES.items():
        assert expected in found[name], (name, found[name][-2000:])


@pytest.mark.parametrize(
    ("exit_code", "says"),
    [
        (1, "exited with code 1"),
        (0, "exited with code 0"),
        (-9, "killed by SIGKILL (out of memory?)"),
        (-11, "killed by SIGSEGV (a crash in native code?)"),
    ],
)
def test_cause_says_how_the_process_ended(exit_code: int, says: str):
    """The cause names the exit code or the signal, with the likely reason."""
    assert says in parse_guard.cause(exit_code)
