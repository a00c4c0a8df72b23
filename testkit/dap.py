"""A small Debug Adapter Protocol client that drives debugpy the way VS Code does, for tests and benchmarks.

VS Code's Python debugger starts ``python -m debugpy.adapter``, speaks DAP to it over stdio
(``Content-Length`` framing, JSON bodies) and sends a launch.json configuration as the ``launch`` or
``attach`` request's arguments; with ``"console": "integratedTerminal"`` the adapter asks VS Code to start
the debuggee (``runInTerminal``). This client does the same with the standard library only, and reads
``.vscode/launch.json`` the way VS Code does: comments, trailing commas, ``${workspaceFolder}``,
``${file}``, ``${input:...}``, ``${env:...}`` and ``${command:python.interpreterPath}``.
Protocol: https://microsoft.github.io/debug-adapter-protocol/specification
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

VARIABLE = re.compile(r"\$\{([^}]+)\}")


class DapError(AssertionError):
    """The adapter answered a request with ``success: false``, or an expected message never came."""


def load_jsonc(path: Path) -> Any:
    """Parse a VS Code JSONC file (comments, trailing commas) with json5, as VS Code tolerates them."""
    import json5

    return json5.loads(path.read_text(encoding="utf-8"))


def substitute(value: Any, variables: Mapping[str, str], inputs: Mapping[str, str]) -> Any:
    """Replace VS Code's ``${...}`` variables in every string of ``value``, recursively.

    ``variables`` holds ``workspaceFolder``, ``file``, ``command:python.interpreterPath`` and the like;
    ``inputs`` the answers to ``${input:ID}`` prompts. An unknown variable is an error, as in VS Code.
    """
    if isinstance(value, dict):
        return {key: substitute(item, variables, inputs) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, variables, inputs) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name.startswith("input:"):
            return inputs[name.removeprefix("input:")]
        if name.startswith("env:"):
            return os.environ.get(name.removeprefix("env:"), "")
        if name not in variables:
            raise KeyError(f"launch.json uses ${{{name}}}, which this client does not resolve")
        return variables[name]

    return VARIABLE.sub(replace, value)


def launch_configuration(
    launch_json: Path,
    name: str,
    *,
    workspace: Path,
    file: Path | None = None,
    python: str = sys.executable,
    inputs: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The configuration ``name`` of ``launch_json`` with every variable resolved, as VS Code sends it.

    VS Code's Python extension adds the selected interpreter as ``python`` when the configuration does
    not name one; so does this.
    """
    document = load_jsonc(launch_json)
    matches = [config for config in document["configurations"] if config["name"] == name]
    if len(matches) != 1:
        raise KeyError(f"{launch_json} has {len(matches)} configurations named {name!r}")
    variables = {
        "workspaceFolder": str(workspace),
        "workspaceFolderBasename": workspace.name,
        "command:python.interpreterPath": python,
        "pathSeparator": os.sep,
        "/": os.sep,
    }
    if file is not None:
        variables.update(
            file=str(file),
            fileBasename=file.name,
            fileBasenameNoExtension=file.stem,
            fileDirname=str(file.parent),
            relativeFile=os.path.relpath(file, workspace),
        )
    config = substitute(matches[0], variables, inputs or {})
    config.setdefault("python", python)
    return config


class DapClient:
    """One debug session: the adapter process, a reader thread, requests, responses and events."""

    def __init__(
        self,
        python: str = sys.executable,
        cwd: Path | None = None,
        log: Path | None = None,
        connect: tuple[str, int] | None = None,
    ):
        """Start ``python -m debugpy.adapter`` on stdio, or with ``connect`` talk to an adapter that
        already listens there (VS Code does that for ``attach`` configurations with ``connect``)."""
        self.adapter: subprocess.Popen | None = None
        self._socket: socket.socket | None = None
        if connect is None:
            self.adapter = subprocess.Popen(
                [python, "-m", "debugpy.adapter"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=cwd,
            )
            self._reader, self._writer = self.adapter.stdout, self.adapter.stdin
        else:
            self._socket = socket.create_connection(connect, timeout=30)
            self._socket.settimeout(None)
            self._reader, self._writer = self._socket.makefile("rb"), self._socket.makefile("wb")
        self._seq = 0
        self._lock = threading.Lock()
        self._responses: dict[int, dict] = {}
        self._response_ready = threading.Condition()
        self._closed = threading.Event()
        self.events: queue.Queue[dict] = queue.Queue()
        self.seen_events: list[dict] = []
        self.debuggees: list[subprocess.Popen] = []
        self._log = log.open("ab") if log else None
        self._reader_thread = threading.Thread(target=self._read_loop, daemon=True)
        self._reader_thread.start()

    # --- wire format ------------------------------------------------------------------------------
    def _send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        with self._lock:
            self._writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self._writer.flush()

    def _read_message(self) -> dict | None:
        length = None
        while True:
            line = self._reader.readline()
            if not line:
                return None
            line = line.strip()
            if not line:
                break
            header, _, value = line.partition(b":")
            if header.strip().lower() == b"content-length":
                length = int(value)
        return json.loads(self._reader.read(length))

    def _read_loop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._dispatch_messages()
        self._closed.set()

    def _dispatch_messages(self) -> None:
        while (message := self._read_message()) is not None:
            kind = message.get("type")
            if kind == "response":
                with self._response_ready:
                    self._responses[message["request_seq"]] = message
                    self._response_ready.notify_all()
            elif kind == "event":
                self.seen_events.append(message)
                self.events.put(message)
            elif kind == "request":
                self._reverse_request(message)

    def _reverse_request(self, message: dict) -> None:
        """Answer the adapter's requests to the editor; ``runInTerminal`` starts the debuggee."""
        if message["command"] != "runInTerminal":
            self._answer(message, success=False, body={}, error=f"unsupported {message['command']}")
            return
        args = message["arguments"]
        env = dict(os.environ)
        for key, value in (args.get("env") or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        process = subprocess.Popen(
            args["args"],
            cwd=args.get("cwd") or None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            start_new_session=True,
        )
        self.debuggees.append(process)
        self._answer(message, success=True, body={"processId": process.pid})

    def _answer(self, request: dict, *, success: bool, body: dict, error: str = "") -> None:
        self._seq += 1
        response = {
            "seq": self._seq,
            "type": "response",
            "request_seq": request["seq"],
            "command": request["command"],
            "success": success,
            "body": body,
        }
        if error:
            response["message"] = error
        self._send(response)

    # --- requests and events ----------------------------------------------------------------------
    def send_request(self, command: str, arguments: dict | None = None) -> int:
        """Send a request without waiting; returns its sequence number for ``response``."""
        with self._lock:
            self._seq += 1
            seq = self._seq
        self._send({"seq": seq, "type": "request", "command": command, "arguments": arguments or {}})
        return seq

    def response(self, seq: int, timeout: float) -> dict:
        """Wait for the response to request ``seq``; its body, or DapError if it failed."""
        deadline = time.monotonic() + timeout
        with self._response_ready:
            while seq not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self._closed.is_set():
                    raise DapError(f"no response to request {seq} within {timeout:.0f} s")
                self._response_ready.wait(min(left, 0.5))
            message = self._responses.pop(seq)
        if not message["success"]:
            raise DapError(f"{message['command']} failed: {message.get('message')} {message.get('body')}")
        return message.get("body") or {}

    def request(self, command: str, arguments: dict | None = None, timeout: float = 30.0) -> dict:
        """Send a request and return the body of its successful response."""
        return self.response(self.send_request(command, arguments), timeout)

    def wait_event(
        self, name: str, timeout: float, predicate: Callable[[dict], bool] = lambda _body: True
    ) -> dict:
        """The body of the next event ``name`` that satisfies ``predicate``; other events are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                seen = [event["event"] for event in self.seen_events]
                raise DapError(f"no {name!r} event within {timeout:.0f} s; events so far: {seen}")
            try:
                event = self.events.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if event["event"] == name and predicate(event.get("body") or {}):
                return event.get("body") or {}

    # --- a session, the way VS Code runs one ------------------------------------------------------
    def initialize(self) -> dict:
        """The ``initialize`` request with the capabilities VS Code announces."""
        return self.request(
            "initialize",
            {
                "clientID": "vscode",
                "clientName": "localflow DAP test client",
                "adapterID": "debugpy",
                "pathFormat": "path",
                "linesStartAt1": True,
                "columnsStartAt1": True,
                "supportsVariableType": True,
                "supportsVariablePaging": True,
                "supportsRunInTerminalRequest": True,
                "supportsProgressReporting": False,
                "supportsInvalidatedEvent": True,
                "locale": "en",
            },
        )

    def start(
        self,
        config: dict[str, Any],
        breakpoints: Mapping[Path, list[int]],
        timeout: float = 60.0,
        exception_filters: Sequence[str] = ("uncaught",),
    ) -> None:
        """``launch`` or ``attach`` with ``config``, set ``breakpoints``, then ``configurationDone``.

        Same order as VS Code: the adapter sends ``initialized`` after the launch/attach request, the
        client configures breakpoints, and the launch/attach response arrives after configurationDone.
        ``exception_filters`` are the ticked boxes of the Breakpoints view: VS Code's default is
        "Uncaught Exceptions" only.
        """
        self.initialize()
        start_seq = self.send_request(config["request"], config)
        self.wait_event("initialized", timeout)
        for path, lines in breakpoints.items():
            body = self.request(
                "setBreakpoints",
                {"source": {"path": str(path)}, "breakpoints": [{"line": line} for line in lines]},
            )
            assert len(body["breakpoints"]) == len(lines), body
        self.request("setExceptionBreakpoints", {"filters": list(exception_filters)})
        self.request("configurationDone")
        self.response(start_seq, timeout)

    def top_frame(self, thread_id: int) -> dict:
        """The innermost frame of a stopped thread."""
        return self.request("stackTrace", {"threadId": thread_id, "startFrame": 0, "levels": 20})[
            "stackFrames"
        ][0]

    def variables(self, reference: int, timeout: float = 30.0) -> list[dict]:
        """The children of a scope or variable."""
        return self.request("variables", {"variablesReference": reference}, timeout=timeout)["variables"]

    def expand_all(self, frame_id: int, depth: int = 2, timeout: float = 30.0) -> dict[str, list[dict]]:
        """Expand every scope of a frame and every variable in it, ``depth`` levels down, as a user
        clicking through the Variables view does; returns each scope's variables by scope name."""
        deadline = time.monotonic() + timeout

        def expand(reference: int, level: int) -> list[dict]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DapError(f"expanding the variables took longer than {timeout:.0f} s")
            children = self.variables(reference, timeout=left)
            if level < depth:
                for child in children:
                    if child.get("variablesReference"):
                        child["children"] = expand(child["variablesReference"], level + 1)
            return children

        scopes = self.request("scopes", {"frameId": frame_id})["scopes"]
        return {scope["name"]: expand(scope["variablesReference"], 1) for scope in scopes}

    def evaluate(self, expression: str, frame_id: int, timeout: float = 30.0) -> str:
        """The value VS Code's Debug Console shows for ``expression`` in a frame."""
        body = self.request(
            "evaluate", {"expression": expression, "frameId": frame_id, "context": "repl"}, timeout=timeout
        )
        return body["result"]

    def close(self, terminate_debuggee: bool = True) -> None:
        """Disconnect (terminating a launched debuggee unless told not to), then stop the adapter and
        whatever this client started (each debuggee runs in its own process group)."""
        if not self._closed.is_set():
            with contextlib.suppress(DapError, OSError, ValueError):
                self.request("disconnect", {"terminateDebuggee": terminate_debuggee}, timeout=10)
        for process in self.debuggees:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        if self._socket is not None:
            self._socket.close()
        if self.adapter is not None and self.adapter.poll() is None:
            self.adapter.terminate()
            try:
                self.adapter.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.adapter.kill()
                self.adapter.wait()
        if self._log:
            self._log.close()

    def __enter__(self) -> DapClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# --- what a user checks at a stop ---------------------------------------------------------------

STOP_TIMEOUT = 240.0  # F5 to the stop takes seconds; the margin is for a busy 2-core CI machine
EXPAND_TIMEOUT = 60.0  # a hang on context (apache/airflow#51861) fails here instead of waiting forever


def line_of(path: Path, text: str) -> int:
    """The line number of the only line of ``path`` that contains ``text``."""
    lines = [number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(lines) == 1, f"{text!r} is on lines {lines} of {path}"
    return lines[0]


def check_stop(
    client: DapClient, path: Path, line: int, variable: str, expected: str, *, stopped: dict | None = None
) -> dict:
    """Wait for the stop (unless given its event); assert where it is and a local's value; expand
    everything; continue; return the scopes."""
    stopped = stopped or client.wait_event("stopped", STOP_TIMEOUT)
    assert stopped["reason"] == "breakpoint", stopped
    frame = client.top_frame(stopped["threadId"])
    assert (Path(frame["source"]["path"]).resolve(), frame["line"]) == (path.resolve(), line)
    started = time.monotonic()
    scopes = client.expand_all(frame["id"], depth=3, timeout=EXPAND_TIMEOUT)
    assert time.monotonic() - started < EXPAND_TIMEOUT
    local = {item["name"]: item for item in scopes["Locals"]}
    assert expected in local[variable]["value"], local[variable]
    # Clear the breakpoint, as a user does once done, so the run goes to the end.
    client.request("setBreakpoints", {"source": {"path": str(path)}, "breakpoints": []})
    client.request("continue", {"threadId": stopped["threadId"]})
    return scopes
