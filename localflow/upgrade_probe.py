"""What ``upgrade-check`` measures inside one release's venv: its source is run with ``python -c``.

The standard library and Airflow only, no localflow module: it runs in the candidate's venv, whose Airflow
the workspace's own code may not hold in (and ``-c`` puts no folder of localflow on ``sys.path``, where
its modules would shadow a DAG's imports). Stock Airflow as a user's DAGs meet it: ``DagBag`` parses a
file, ``dag.test()`` runs a DAG. One JSON line after ``MARKER`` is the answer (Airflow logs to stdout too).

    parse DAG_FILE...                            # {file: {"error", "dags", "deprecations"}}
    test SECONDS DAG_FILE DAG_ID [FILE ID]...     # {"FILE DAG_ID": "success" | "failed (tasks: a)" | ...}

Every DAG of one side runs in one process (Airflow imported once), each within SECONDS (SIGALRM).
"""

from __future__ import annotations

import inspect
import json
import re
import signal
import sys
import warnings

MARKER = "LOCALFLOW-UPGRADE-PROBE"
# Airflow's RemovedInAirflow4Warning, DeprecatedImportWarning, AirflowProviderDeprecationWarning, Python's.
DEPRECATION = re.compile(r"Deprecat|Removed|FutureWarning")


def _dagbag(path: str):
    try:  # 3.2 moved it; the old path still imports there, with a deprecation of its own
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag
    # 3.3 has no include_examples (it never loads them here); before, it defaults to [core] load_examples
    if "include_examples" in inspect.signature(DagBag).parameters:
        return DagBag(dag_folder=path, include_examples=False)
    return DagBag(dag_folder=path)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def parse(path: str) -> dict:
    """Import errors, DAG ids and deprecation warnings of one file."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = _dagbag(path)
    # DagBag records each warning of the file as "PATH:LINE: CATEGORY: MESSAGE"; the category is kept
    # there only (3.2+ re-emits them all as UserWarning).
    recorded = [entry for entries in getattr(bag, "captured_warnings", {}).values() for entry in entries]
    recorded += [f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}" for w in caught]
    deprecations = []
    for entry in recorded:
        text = re.sub(r"^.*?:\d+: (?:[\w.]*\.)?", "", entry)  # no place, no module of the category
        category = text.split(":", 1)[0]
        if DEPRECATION.search(category) and text not in deprecations:
            deprecations.append(text)
    errors = list(bag.import_errors.values())
    return {
        "error": _last_line(errors[0]) if errors else None,
        "dags": sorted(bag.dags),
        "deprecations": deprecations,
    }


class _Timeout(Exception):
    pass


def _alarm(_signum, _frame):
    raise _Timeout


def outcome(path: str, dag_id: str) -> str:
    """``dag.test()`` of one DAG: its run's state, and the tasks that failed."""
    dag = _dagbag(path).dags[dag_id]
    run = dag.test()
    state = str(getattr(run, "state", "no run"))
    if state.endswith("success"):
        return "success"
    try:
        failed = sorted(
            ti.task_id
            for ti in run.get_task_instances()
            if str(ti.state).split(".")[-1] in {"failed", "upstream_failed"}
        )
    except Exception:  # the state alone is still the answer
        failed = []
    state = state.rsplit(".", maxsplit=1)[-1]
    return f"{state} (tasks: {', '.join(failed)})" if failed else state


def test(seconds: int, pairs: list[str]) -> dict[str, str]:
    """The outcome of each (file, DAG id) of ``pairs``; an exception or the timeout is an outcome too."""
    signal.signal(signal.SIGALRM, _alarm)
    answer = {}
    for path, dag_id in zip(pairs[::2], pairs[1::2], strict=True):
        signal.alarm(seconds)
        try:
            answer[f"{path} {dag_id}"] = outcome(path, dag_id)
        except _Timeout:
            answer[f"{path} {dag_id}"] = f"timeout ({seconds} s)"
        except Exception as error:  # the DAG's own failure: its outcome
            answer[f"{path} {dag_id}"] = f"error: {type(error).__name__}: {_last_line(str(error))}"[:300]
        finally:
            signal.alarm(0)
    return answer


def main(argv: list[str]) -> int:
    """Print the answer after ``MARKER``."""
    answer = {path: parse(path) for path in argv[1:]} if argv[0] == "parse" else test(int(argv[1]), argv[2:])
    print(MARKER, json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
