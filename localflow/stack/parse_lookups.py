"""A connection or variable a DAG file reads at its top level becomes a DAG warning at that line.

It works, but runs at every parse (every 30 s, and at every save). ``tests/dags/`` reports it under pytest;
this makes the stack itself record it, so that the UI's DAG warnings and the editor's Problems panel
(``python -m localflow problems``, docs/editor.md) show it. The workspace's secrets backend logs every
lookup at DEBUG (``localflow/secrets/backend.py``); ``record_lookups`` wraps the parse of one file
(``airflow.dag_processing.processor._parse_file``, in the parsing process) to note the lookups made from
the file's own lines, and adds them to the parse's warnings as Airflow's "runtime varying value" warning
(``Line N, Col M`` / ``Issue: ...``, the form of Airflow's own), merged with Airflow's own for the DAG since
a DAG has one warning of each type. Installed in the dag-processor by the workspace plugin's
``on_starting`` listener; releases before 3.2 lack that warning type, and get nothing.

Imports only Airflow, and only when called.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any

BACKEND_LOGGER = "localflow.secrets.backend"  # the logger of localflow/secrets/backend.py
HEADER = "This Dag file reads connections or variables at its top level, so at every parse."


class LookupRecorder(logging.Handler):
    """Notes the line and column of ``path`` each backend lookup came from (the backend logs each one)."""

    def __init__(self, path: str) -> None:
        super().__init__(logging.DEBUG)
        self.path = path
        self.lookups: list[tuple[str, str, int, int]] = []  # kind, name, line, column (1-based)

    def emit(self, record: logging.LogRecord) -> None:
        """Note where in the file the lookup logged by ``record`` was made; nothing for another file's."""
        frame = sys._getframe()  # emit runs inside the lookup: walk out to the DAG file's frame
        while frame and frame.f_code.co_filename != self.path:
            frame = frame.f_back
        if frame is None or not isinstance(record.args, tuple) or len(record.args) != 2:
            return
        line, column = frame.f_lineno, 1
        positions = getattr(frame.f_code, "co_positions", None)  # Python 3.11+: the call's own column
        if positions:
            found = list(positions())[frame.f_lasti // 2]
            if found[0] == line and found[2] is not None:
                column = found[2] + 1
        kind, name = record.args
        self.lookups.append((str(kind), str(name), line, column))


def message(lookups: list[tuple[str, str, int, int]]) -> str:
    """The warning's text: one block per lookup, as Airflow writes its own runtime-varying values."""
    lines = [HEADER, ""]
    for kind, name, line, column in lookups:
        template = f"{{{{ var.value.{name} }}}}" if kind == "variable" else f"{{{{ conn.{name}.host }}}}"
        lines += [
            f"Line {line}, Col {column}",
            f"Issue: reads {kind} {name!r} at parse time: move it into a task, or use a template such as "
            f"{template}",
            "",
        ]
    return "\n".join(lines)


def add_warnings(result: Any, lookups: list[tuple[str, str, int, int]], warning_type: str) -> None:
    """Add the lookups to each DAG of the parse's result, merged into Airflow's own warning of the type."""
    if not lookups or result is None or not result.serialized_dags:
        return
    warnings = list(result.warnings or [])
    text = message(lookups)
    for dag_id in sorted({dag.dag_id for dag in result.serialized_dags}):
        same = next(
            (w for w in warnings if w.get("dag_id") == dag_id and w.get("warning_type") == warning_type), None
        )
        if same:
            same["message"] = f"{same['message'].rstrip()}\n\n{text}"
        else:
            warnings.append({"dag_id": dag_id, "warning_type": warning_type, "message": text})
    result.warnings = warnings


@functools.cache  # once per process
def record_lookups() -> None:
    """Make each parse of a DAG file report the file's top-level lookups as a DAG warning."""
    from airflow.dag_processing import processor
    from airflow.models.dagwarning import DagWarningType

    warning_type = getattr(DagWarningType, "RUNTIME_VARYING_VALUE", None)
    if warning_type is None:
        return
    parse = processor._parse_file

    @functools.wraps(parse)
    def _parse_file(msg: Any, log: Any) -> Any:
        logger = logging.getLogger(BACKEND_LOGGER)
        recorder = LookupRecorder(str(msg.file))
        level, propagate = logger.level, logger.propagate
        logger.addHandler(recorder)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False  # the DEBUG lines are for the recorder, not the parse's log
        try:
            result = parse(msg, log)
        finally:
            logger.removeHandler(recorder)
            logger.setLevel(level)
            logger.propagate = propagate
        if not msg.callback_requests:
            add_warnings(result, recorder.lookups, warning_type.value)
        return result

    processor._parse_file = _parse_file
