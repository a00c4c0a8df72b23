"""``.vscode/tasks.json`` as VS Code reads it: a task's command with its variables resolved, and its
background problem matcher applied to a task's output the way VS Code's watching collector applies it.

VS Code's regexes are JavaScript's; ``python_regex`` translates the parts that differ (named groups) and
refuses what it does not know how to translate, so a test never silently matches something VS Code would not.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit.dap import load_jsonc, substitute
from testkit.environment import REPO

TASKS_JSON = REPO / ".vscode" / "tasks.json"
SEVERITIES = {"error", "warning", "info"}  # VS Code's names; another matched word is taken as an error


def python_regex(javascript: str) -> re.Pattern:
    """A JavaScript regex (as VS Code compiles a problem matcher's) as Python's ``re``."""
    if re.search(r"\(\?<[=!]|\\[pPk]|\(\?[a-z]", javascript):
        raise ValueError(f"no translation of this JavaScript regex here: {javascript!r}")
    return re.compile(javascript.replace("(?<", "(?P<"))


def task(
    label: str, workspace: Path, file: Path | None = None, python: str = sys.executable
) -> dict[str, Any]:
    """The task ``label`` of tasks.json with VS Code's variables resolved for ``workspace`` (and ``file``)."""
    matches = [entry for entry in load_jsonc(TASKS_JSON)["tasks"] if entry["label"] == label]
    if len(matches) != 1:
        raise KeyError(f"{TASKS_JSON} has {len(matches)} tasks labelled {label!r}")
    variables = {
        "workspaceFolder": str(workspace),
        "command:python.interpreterPath": python,
        "pathSeparator": os.sep,
    }
    if file is not None:
        variables.update(file=str(file), relativeFile=os.path.relpath(file, workspace))
    return substitute(matches[0], variables, {})


def command_line(resolved: dict[str, Any]) -> list[str]:
    """A resolved ``process`` task's command and arguments, as VS Code starts it."""
    assert resolved["type"] == "process", resolved
    return [resolved["command"], *resolved.get("args", [])]


@dataclass(frozen=True)
class Marker:
    """One entry of the Problems panel: the file as VS Code resolves it, 1-based line and column."""

    file: Path
    line: int
    column: int
    severity: str
    message: str


@dataclass
class ProblemMatcher:
    """A task's background problem matcher with a one-line pattern (the kind tasks.json uses)."""

    pattern: re.Pattern
    groups: dict[str, int]
    location: list[str]
    begins: re.Pattern
    ends: re.Pattern
    active_begin: bool

    @classmethod
    def of(cls, resolved: dict[str, Any]) -> ProblemMatcher:
        """The matcher of a resolved task (``task``)."""
        matcher = resolved["problemMatcher"]
        pattern = matcher["pattern"]
        assert isinstance(pattern, dict), "a multi-line pattern is not handled here"
        location = matcher.get("fileLocation", "relative")
        location = [location] if isinstance(location, str) else location
        groups = {
            key: pattern[key] for key in ("file", "line", "column", "severity", "message") if key in pattern
        }
        return cls(
            python_regex(pattern["regexp"]),
            groups,
            location,
            python_regex(matcher["background"]["beginsPattern"]),
            python_regex(matcher["background"]["endsPattern"]),
            bool(matcher["background"].get("activeBegin")),
        )

    def marker(self, line: str) -> Marker | None:
        """What one output line adds to the Problems panel (VS Code tests each line with ``RegExp.exec``)."""
        match = self.pattern.search(line)
        if not match:
            return None
        value = {key: match.group(index) for key, index in self.groups.items()}
        name = value["file"]
        kind = self.location[0]
        if kind == "absolute" or (kind == "autoDetect" and Path(name).is_absolute()):
            file = Path(name)
        else:  # "relative" (and autoDetect's relative case): against the folder given, else the workspace
            file = Path(self.location[1]) / name
        severity = (value.get("severity") or "error").lower()
        return Marker(
            file,
            int(value["line"]),
            int(value.get("column") or 1),
            severity if severity in SEVERITIES else "error",
            value["message"],
        )

    def batches(self, lines: Iterable[str]) -> list[list[Marker]]:
        """The complete batches of the output: each begins at ``beginsPattern`` and ends at ``endsPattern``
        (VS Code then removes the markers of the batch before that were not reported again)."""
        done: list[list[Marker]] = []
        current: list[Marker] | None = [] if self.active_begin else None
        for line in lines:
            if self.begins.search(line):
                current = []
                continue
            if self.ends.search(line):
                if current is not None:
                    done.append(current)
                current = None
                continue
            marker = self.marker(line)
            if marker and current is not None:
                current.append(marker)
        return done

    def panel(self, lines: Iterable[str]) -> list[Marker] | None:
        """What the Problems panel shows after ``lines``: the last complete batch (None before the first)."""
        batches = self.batches(lines)
        return batches[-1] if batches else None
