"""``python -m localflow run FILE``: trigger the DAG of FILE on the running stack and follow its task logs.

What the UI's Trigger button does (``--conf``, ``--logical-date``), from the terminal or the editor's task
"localflow: run this DAG": the run is the stack's own, its tasks run by the scheduler as any other. Each
task's log lines are printed as they are written (the REST API's task log, read again every half second),
then the run's state and its address in the UI; exit 0 when it succeeded. docs/editor.md has more.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from localflow import rest
from localflow.config import settings
from localflow.editor import connection
from localflow.editor.problems import Workspace, from_import_error
from localflow.errors import LocalflowError
from localflow.polling import WaitTimeout, wait_until
from localflow.watcher.reparse import BUNDLE_NAME, START_MARGIN

PREFIX = "localflow run:"
INTERVAL = 0.5  # seconds between looks at the run's task instances and logs
PARSE_WAIT = 30.0  # a file saved just now: the watcher has it reparsed within a second or two
# Airflow's log view folds ``::group::NAME`` ... ``::endgroup::`` sections; the terminal drops the markers,
# and the section on where the log was read from, which differs while the task runs (served logs).
SOURCE_GROUP = "::group::Log message source details"
STARTED = frozenset({"running", "success", "failed", "up_for_retry", "up_for_reschedule", "deferred"})


def say(message: str) -> None:
    """One line of the command's own, apart from the tasks' log lines."""
    print(f"{PREFIX} {message}", flush=True)


def parse_conf(text: str | None) -> dict:
    """``--conf``: a JSON object, as the UI's trigger form takes it."""
    if not text:
        return {}
    try:
        conf = json.loads(text)
    except ValueError as error:
        raise LocalflowError(
            f"--conf is not JSON ({error}): give an object, e.g. --conf '{{\"n\": 3}}'"
        ) from None
    if not isinstance(conf, dict):
        raise LocalflowError("--conf must be a JSON object, e.g. --conf '{\"n\": 3}'")
    return conf


def relative_fileloc(file: str, workspace: Workspace) -> str:
    """FILE as the API names DAG files: relative to the DAGs folder; a file elsewhere is one clear error."""
    path, dags = Path(file).resolve(), workspace.dags.resolve()
    if not path.is_relative_to(dags):
        raise LocalflowError(f"{file} is not in the DAGs folder {workspace.dags}: open a DAG file of dags/")
    return path.relative_to(dags).as_posix()


def seconds(timestamp: str | None) -> float:
    """An API timestamp (ISO 8601, ``Z`` for UTC) as epoch seconds; 0 when there is none."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() if timestamp else 0.0


def latest_parse(
    api: rest.AirflowClient, fileloc: str, workspace: Workspace
) -> tuple[float, list[str] | str]:
    """When the stack last parsed the file, and what it found: its DAGs, or its import error's problems."""
    began, ids = 0.0, []
    for dag in api.dags(exclude_stale="false", bundle_name=BUNDLE_NAME):
        if dag.get("relative_fileloc") == fileloc and dag.get("last_parsed_time"):
            began = max(began, seconds(dag["last_parsed_time"]) - (dag.get("last_parse_duration") or 0.0))
            if not dag.get("is_stale"):
                ids.append(dag["dag_id"])
    for error in api.get("/api/v2/importErrors?limit=100")["import_errors"]:
        if error["filename"] == fileloc and seconds(error.get("timestamp")) >= began:
            text = "\n".join(map(str, from_import_error(fileloc, error["stack_trace"], workspace)))
            return seconds(error.get("timestamp")), text
    return began, sorted(ids)


def dag_of(
    api: rest.AirflowClient, fileloc: str, dag_id: str | None, workspace: Workspace, saved: float
) -> str:
    """The DAG of the file to run, once the stack has parsed the file's last save (``saved``, its
    modification time: "run this DAG" right after a save runs what was saved); its import error, or its
    several DAGs, as one clear error."""
    seen: list[tuple[float, list[str] | str]] = []

    def parsed_since_save() -> bool:
        seen[:] = [latest_parse(api, fileloc, workspace)]
        began, found = seen[0]
        return bool(found) and began >= saved - START_MARGIN

    try:
        wait_until(parsed_since_save, PARSE_WAIT, interval=INTERVAL, what=f"a parse of {fileloc}")
    except WaitTimeout:
        if not seen or not seen[0][1]:
            raise LocalflowError(
                f"the stack has no DAG from dags/{fileloc} after {PARSE_WAIT:g} s: is it a DAG file, "
                "and does `python -m localflow problems --once` name it?"
            ) from None
        say(f"the stack has not parsed the last save of dags/{fileloc} yet: running what it parsed before")
    found = seen[0][1]
    if isinstance(found, str):
        raise LocalflowError(f"dags/{fileloc} does not import, so it has no DAG to run:\n{found}")
    if dag_id:
        if dag_id not in found:
            raise LocalflowError(f"dags/{fileloc} has no DAG {dag_id!r}; its DAGs: {', '.join(found)}")
        return dag_id
    if len(found) > 1:
        raise LocalflowError(f"dags/{fileloc} has several DAGs ({', '.join(found)}): pick one with --dag-id")
    return found[0]


def error_lines(details: list[dict], workspace: Workspace) -> list[str]:
    """A task's exception as a traceback: its frames in dags/ and plugins/ (all, if none is) and the error."""
    lines: list[str] = []
    for detail in reversed(details):  # the API lists the last exception first, its causes after it
        frames = detail.get("frames") or []
        ours = [frame for frame in frames if workspace.local(str(frame.get("filename", "")))] or frames
        lines += [f'  File "{f.get("filename")}", line {f.get("lineno")}, in {f.get("name")}' for f in ours]
        lines.append(f"{detail.get('exc_type')}: {detail.get('exc_value')}")
    return lines


def readable(events: list[dict | str], workspace: Workspace) -> list[str]:
    """A task log's lines as the terminal shows them: no group markers, no source section, one line each,
    warnings and errors marked, a task's exception as its traceback."""
    lines: list[str] = []
    in_source = False
    for event in events:
        record = event if isinstance(event, dict) else {"event": event}
        text = str(record.get("event", ""))
        if text.startswith(("::group::", "::endgroup::")):
            in_source = text.startswith(SOURCE_GROUP)
            continue
        if in_source:
            continue
        level = str(record.get("level", "")).upper()
        mark = f"{level} " if level in {"WARNING", "ERROR", "CRITICAL"} else ""
        lines += [mark + line for line in text.rstrip("\n").splitlines() or [""]]
        if record.get("error_detail"):
            lines += error_lines(record["error_detail"], workspace)
    return lines


class LogFollower:
    """Prints each task try's log lines once, as they appear: ``[task_id] line`` (``[task_id:2]`` if mapped)."""

    def __init__(self, api: rest.AirflowClient, dag_id: str, run_id: str, workspace: Workspace) -> None:
        self.api, self.dag_id, self.run_id, self.workspace = api, dag_id, run_id, workspace
        self.printed: dict[tuple[str, int, int], int] = {}  # (task, map index, try) -> lines printed

    def look(self) -> None:
        """Print what the tasks logged since the last look."""
        for ti in sorted(
            self.api.task_instances(self.dag_id, self.run_id), key=lambda t: t.get("start_date") or ""
        ):
            if ti.get("state") not in STARTED or not ti.get("try_number"):
                continue
            key = (ti["task_id"], ti.get("map_index", -1), ti["try_number"])
            try:
                events = self.api.task_log_events(self.dag_id, self.run_id, key[0], key[2], key[1])
            except rest.ApiError:
                continue  # no log yet
            lines = readable(events, self.workspace)
            name = key[0] if key[1] < 0 else f"{key[0]}:{key[1]}"
            name = name if key[2] == 1 else f"{name} try {key[2]}"
            for line in lines[self.printed.get(key, 0) :]:
                print(f"[{name}] {line}", flush=True)
            self.printed[key] = len(lines)


def run_url(env: Mapping[str, str], dag_id: str, run_id: str) -> str:
    """The run in the UI (a Codespace's forwarded address there)."""
    return f"{settings.ui_url(env).rstrip('/')}/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}"


def main(
    env: Mapping[str, str], file: str, dag_id: str | None, conf_text: str | None, logical_date: str | None
) -> int:
    """Trigger, follow, and end with the run's state: exit 0 when it succeeded, 1 otherwise."""
    conf = parse_conf(conf_text)
    workspace = Workspace.from_environment(env)
    fileloc = relative_fileloc(file, workspace)
    api = connection.client(env)
    if api.health() is None:
        raise LocalflowError(connection.not_running(api))
    try:
        dag_id = dag_of(api, fileloc, dag_id, workspace, Path(file).stat().st_mtime)
        run_id = api.trigger(dag_id, conf, logical_date=logical_date)
    except rest.ApiError as error:
        raise LocalflowError(str(error)) from None
    say(f"triggered {dag_id}: run {run_id}; {run_url(env, dag_id, run_id)}")
    follower = LogFollower(api, dag_id, run_id, workspace)
    try:
        while True:
            state = api.run(dag_id, run_id).get("state")
            follower.look()
            if state in rest.FINISHED_RUN_STATES:
                break
            time.sleep(INTERVAL)
        follower.look()  # the last lines of the last task
    except KeyboardInterrupt:
        say(f"stopped following; the run goes on: {run_url(env, dag_id, run_id)}")
        return 130
    except rest.ApiError as error:
        raise LocalflowError(f"following run {run_id} of {dag_id}: {error}") from None
    say(f"{dag_id} run {run_id} finished: {state}")
    say(f"in the UI: {run_url(env, dag_id, run_id)}")
    return 0 if state == "success" else 1
