"""``python -m localflow problems``: the stack's import errors and DAG warnings as ``FILE:LINE:COL: error: ...``.

It polls the api-server (``/api/v2/importErrors``, ``/api/v2/dagWarnings``) and prints a batch, framed by
a begin and an end line, whenever the set changes: VS Code's background problem matcher
(``.vscode/tasks.json``) turns each batch into the Problems panel. An error is placed at the deepest
frame of its traceback inside dags/ or plugins/ (a broken helper at the helper's line), a SyntaxError at
its own line and column. docs/editor.md has the format and the task.
"""

from __future__ import annotations

import ast
import re
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from localflow import rest
from localflow.config import settings
from localflow.editor import connection
from localflow.stopping import StopRequest

PREFIX = "localflow problems:"
BEGIN = f"{PREFIX} checking"  # the begin line of a batch: "localflow problems: checking URL"
END_PATTERN = rf"{PREFIX} (\d+) found"  # its end line: "localflow problems: 2 found"
INTERVAL = 0.5  # seconds between looks: a save is reparsed in well under a second
RETRY = 2.0  # seconds between tries while the stack does not answer

FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)')
AIRFLOW_POSITION = re.compile(r"^Line (?P<line>\d+), Col (?P<col>\d+)", re.MULTILINE)
AIRFLOW_ISSUE = re.compile(r"^Issue: (?P<issue>.+)$", re.MULTILINE)
FOLDER_NAMES = ("dags", "plugins")


@dataclass(frozen=True, order=True)
class Problem:
    """One line of the Problems panel: a workspace file (relative path), 1-based line and column."""

    path: str
    line: int
    col: int
    severity: str  # "error" or "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.severity}: {self.message}"


@dataclass(frozen=True)
class Workspace:
    """Where the stack's paths are in the editor's workspace: its root and the folders the stack parses."""

    root: Path
    dags: Path
    plugins: Path

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Workspace:
        """The workspace of this command and the folders of the stack it talks to."""
        dags, plugins = connection.folders(env)
        return cls(settings.WORKSPACE, dags, plugins)

    def relative(self, path: Path) -> str:
        """``path`` as the Problems panel names it: relative to the workspace when inside it."""
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else path.as_posix()

    def local(self, stack_path: str) -> Path | None:
        """The workspace file of a path in a traceback; None for code outside dags/ and plugins/.

        The stack's own folders first; then by folder name, for a stack that mounts the workspace
        elsewhere (a container's /opt/airflow/dags/x.py is the workspace's dags/x.py).
        """
        path = PurePosixPath(stack_path)
        for folder in (self.dags, self.plugins):
            if path.is_relative_to(folder.as_posix()):
                return Path(path)
        parts = path.parts
        for index in range(len(parts) - 2, -1, -1):
            if parts[index] in FOLDER_NAMES:
                candidate = self.root.joinpath(*parts[index:])
                if candidate.is_file():
                    return candidate
        return None

    def module(self, path: Path) -> str | None:
        """The module name a DAG file imports ``path`` by (both folders are on ``sys.path`` of a parse)."""
        for folder in (self.dags, self.plugins):
            if path.is_relative_to(folder):
                parts = path.relative_to(folder).with_suffix("").parts
                return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        return None

    def dag_file(self, relative_fileloc: str) -> Path:
        """A file the API names relative to the DAGs folder (its bundle)."""
        return self.dags / relative_fileloc


def source_line(path: Path, line: int) -> str:
    """Line ``line`` of ``path`` as it is now, or "" when it cannot be read."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return lines[line - 1] if 0 < line <= len(lines) else ""


def column(path: Path, line: int, marker: str | None) -> int:
    """The 1-based column a traceback points at: its ``^``/``~`` marker under the code, which Python
    prints with the code's indentation stripped and four spaces of its own; else the line's first code."""
    text = source_line(path, line)
    indent = len(text) - len(text.lstrip())
    if marker is None or not marker.strip() or set(marker.strip()) - set("^~"):
        return indent + 1
    return max(1, len(marker) - len(marker.lstrip()) - 4 + indent + 1)


def import_line(dag_file: Path, module: str | None) -> int:
    """The line of ``dag_file`` that imports ``module`` (or a package above or below it); else 1.

    Airflow keeps only the last frames of an import error's traceback, which for a broken helper are the
    helper's: the DAG file's own line is found by reading its imports.
    """
    try:
        tree = ast.parse(dag_file.read_text(errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return 1
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        if module and any(name == module or module.startswith(f"{name}.") for name in names):
            return node.lineno
    return 1


def from_import_error(filename: str, stack_trace: str, workspace: Workspace) -> list[Problem]:
    """The problems of one import error: at its deepest frame in the workspace, and on the DAG file too
    when that frame is in another file (a helper), so both show in the Problems panel."""
    lines = stack_trace.rstrip("\n").splitlines()
    frames = []  # (index of the File line, its workspace path, its line)
    for index, text in enumerate(lines):
        match = FRAME.match(text)
        if match:
            local = workspace.local(match["path"])
            frames.append((index, local, int(match["line"])))
    last = frames[-1][0] if frames else -1
    after = [text for text in lines[last + 1 :] if not (last >= 0 and text.startswith("    "))]
    message = " ".join(text.strip() for text in after if text.strip()) or (lines[-1] if lines else "")
    dag_file = workspace.dag_file(filename)
    ours = [frame for frame in frames if frame[1] is not None]
    if not ours:  # no traceback into the workspace (a duplicate dag_id, a timeout): the file's first line
        return [Problem(workspace.relative(dag_file), 1, 1, "error", message)]
    index, path, line = ours[-1]
    # The code line and the marker line under it, when Python printed them.
    marker = lines[index + 2] if index + 2 < len(lines) and lines[index + 2].startswith("    ") else None
    found = [Problem(workspace.relative(path), line, column(path, line, marker), "error", message)]
    if path != dag_file:
        in_dag = [frame for frame in ours if frame[1] == dag_file]
        dag_line = in_dag[-1][2] if in_dag else import_line(dag_file, workspace.module(path))
        where = f"{workspace.relative(path)}:{line}"
        found.append(
            Problem(
                workspace.relative(dag_file),
                dag_line,
                column(dag_file, dag_line, None),
                "error",
                f"importing this file failed in {where}: {message}",
            )
        )
    return found


def from_dag_warning(warning: Mapping[str, str], file: Path | None, workspace: Workspace) -> list[Problem]:
    """A DAG warning's problems: one at each ``Line N, Col M`` it names with the ``Issue:`` that follows
    (Airflow's runtime-varying values, the workspace's top-level lookups), else one at line 1."""
    if file is None:
        return []
    text = warning.get("message", "")
    where = f"(Airflow: {warning.get('warning_type', 'warning')}, DAG {warning.get('dag_id')})"
    path = workspace.relative(file)
    positions = list(AIRFLOW_POSITION.finditer(text))
    if not positions:
        return [Problem(path, 1, 1, "warning", f"{' '.join(text.split())} {where}")]
    found = []
    for index, position in enumerate(positions):
        end = positions[index + 1].start() if index + 1 < len(positions) else len(text)
        issue = AIRFLOW_ISSUE.search(text, position.end(), end)
        summary = issue["issue"] if issue else " ".join(text.split())
        found.append(
            Problem(path, int(position["line"]), int(position["col"]), "warning", f"{summary} {where}")
        )
    return found


def collect(api: rest.AirflowClient, workspace: Workspace) -> list[Problem]:
    """Every problem the stack knows now, sorted by file and line."""
    found: set[Problem] = set()
    for filename, stack_trace in api.import_errors().items():
        found.update(from_import_error(filename, stack_trace, workspace))
    warnings = api.dag_warnings()
    if warnings:
        files = {
            dag["dag_id"]: workspace.dag_file(dag["relative_fileloc"])
            for dag in api.dags()
            if dag.get("relative_fileloc")
        }
        for warning in warnings:
            found.update(from_dag_warning(warning, files.get(warning["dag_id"]), workspace))
    return sorted(found)


def print_batch(problems: Iterable[Problem], source: str) -> int:
    """One batch, framed as the problem matcher's background patterns expect; returns its size."""
    problems = list(problems)
    lines = [f"{BEGIN} {source}", *map(str, problems), f"{PREFIX} {len(problems)} found"]
    print("\n".join(lines), flush=True)
    return len(problems)


def look(api: rest.AirflowClient, workspace: Workspace) -> list[Problem] | str:
    """The problems now, or one line saying why the stack could not be asked."""
    if api.health() is None:
        return connection.not_running(api)
    try:
        return collect(api, workspace)
    except rest.ApiError as error:
        return f"the stack at {api.base_url} refused: {error}"


def main(env: Mapping[str, str], once: bool) -> int:
    """Print the problems once (exit 0 when none, 1 when some, 2 without a stack), or on every change."""
    api = connection.client(env)
    workspace = Workspace.from_environment(env)
    if once:
        seen = look(api, workspace)
        if isinstance(seen, str):
            print(f"{PREFIX} {seen}", file=sys.stderr, flush=True)
            return 2
        return 1 if print_batch(seen, api.base_url) else 0
    stopping = StopRequest()
    shown: list[Problem] | None = None
    said = ""
    while not stopping:
        seen = look(api, workspace)
        if isinstance(seen, str):
            if seen != said:  # once per outage; the last batch stays in the Problems panel meanwhile
                print(f"{PREFIX} {seen}; trying again every {RETRY:g} s", flush=True)
                said = seen
            time.sleep(RETRY)
            continue
        said = ""
        if seen != shown:
            print_batch(seen, api.base_url)
            shown = seen
        time.sleep(INTERVAL)
    return 0
