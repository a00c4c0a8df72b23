"""The local S3 server's recording: the writes are kept for the next start, reads and torn lines dropped.

The server itself runs in tests/localflow/stack/test_remote_logs.py (it needs the S3 packages, which the
test venv never has).
"""

from __future__ import annotations

import json
from pathlib import Path

from localflow.stack import s3_server


def test_recording_keeps_the_writes_only(tmp_path: Path):
    """PUT, POST and DELETE are replayed at the next start; GET, HEAD and a line cut short are dropped."""
    lines = [
        json.dumps({"method": method, "url": f"/b/{method}"}) + "\n" for method in ("PUT", "GET", "HEAD")
    ]
    lines += [json.dumps({"method": "DELETE", "url": "/b/x"}) + "\n", '{"method": "PU']
    saved = tmp_path / s3_server.RECORDING_NAME
    saved.write_text("".join(lines))
    s3_server.keep_writes(saved)
    assert saved.read_text() == lines[0] + lines[3]


def test_recording_is_in_the_private_state_folder(tmp_path: Path):
    """The bucket holds task logs: it is kept under the workspace's .airflow/, which only its owner reads."""
    assert (
        s3_server.recording({"LOCALFLOW_WORKSPACE": str(tmp_path)})
        == tmp_path / ".airflow" / "s3-server.jsonl"
    )
