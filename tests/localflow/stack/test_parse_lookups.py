"""A DAG file's top-level lookups join the parse's DAG warnings: merged into Airflow's own of the DAG (one
warning per DAG and type), added to each DAG of the file, nothing for a file without DAGs. The stack's
side, a real dag-processor recording a real ``Variable.get``, is in tests/localflow/editor/test_problems.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from localflow.editor import problems
from localflow.stack import parse_lookups

TYPE = "runtime varying value"
LOOKUP = ("variable", "limit", 6, 9)
AIRFLOWS = "This Dag uses runtime-variable values in Dag construction.\n\nLine 12, Col 1\nCode: dag(...)\nIssue: Don't\n"


def parsed(dag_ids: list[str], warnings: list[dict] | None) -> SimpleNamespace:
    """A parse's result as the dag-processor's parsing process makes it (its DAGs and warnings)."""
    return SimpleNamespace(serialized_dags=[SimpleNamespace(dag_id=d) for d in dag_ids], warnings=warnings)


# DAGs of the file, Airflow's own warnings, expected (dag_id, positions the editor reads from each message)
CASES = {
    "added": (["a"], None, [("a", [(6, 9)])]),
    "each DAG of the file": (["a", "b"], [], [("a", [(6, 9)]), ("b", [(6, 9)])]),
    "merged into Airflow's own": (
        ["a"],
        [{"dag_id": "a", "warning_type": TYPE, "message": AIRFLOWS}],
        [("a", [(12, 1), (6, 9)])],
    ),
    "no DAG: nothing": ([], None, []),
}


@pytest.mark.parametrize(("dag_ids", "warnings", "expected"), CASES.values(), ids=CASES.keys())
def test_lookups_join_the_warnings(tmp_path, dag_ids, warnings, expected):
    """Each DAG's warning names every position, which the Problems panel then shows one by one."""
    result = parsed(dag_ids, warnings)
    parse_lookups.add_warnings(result, [LOOKUP], TYPE)
    workspace = problems.Workspace(tmp_path, tmp_path / "dags", tmp_path / "plugins")
    found = [
        (
            w["dag_id"],
            [(p.line, p.col) for p in problems.from_dag_warning(w, tmp_path / "dags" / "x.py", workspace)],
        )
        for w in result.warnings or []
    ]
    assert found == expected
    assert all(w["warning_type"] == TYPE for w in result.warnings or [])


def test_the_message_says_what_to_do():
    """One block per lookup: where, what was read, and the template to use instead."""
    text = parse_lookups.message([LOOKUP, ("connection", "db", 7, 6)])
    assert "Line 6, Col 9\nIssue: reads variable 'limit' at parse time" in text
    assert "{{ var.value.limit }}" in text and "{{ conn.db.host }}" in text
