"""Run the DAG defined in one file with ``dag.test()``, in this process: what F5 and the tests use.

``python -m localflow dag-test dags/example_etl.py [--dag-id ID]`` loads the file the way the
dag-processor does (``dags/`` and ``plugins/`` on ``sys.path``), picks its DAG (or asks which, when the
file defines several), runs it with ``dag.test()`` and exits 0 only if the run succeeded. DAG files need
no ``if __name__ == "__main__"`` block.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from localflow.errors import LocalflowError


def load_dags(path: Path) -> dict:
    """Parse ``path`` with a DagBag, as the dag-processor does, and return its DAGs by dag_id."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path), safe_mode=False)
    if bag.import_errors:
        error = next(iter(bag.import_errors.values())).strip().splitlines()[-1]
        raise LocalflowError(f"{path.name} failed to import: {error}")
    return bag.dags


def choose(dags: dict, dag_id: str | None, path: Path) -> object:
    """The DAG to run: the one asked for, the only one, or the user's pick when there are several."""
    if not dags:
        raise LocalflowError(f"{path.name} defines no DAG (is the @dag function called at the bottom?).")
    if dag_id:
        if dag_id not in dags:
            raise LocalflowError(f"{path.name} has no DAG {dag_id!r}; it has: {', '.join(sorted(dags))}.")
        return dags[dag_id]
    if len(dags) == 1:
        return next(iter(dags.values()))
    names = sorted(dags)
    if not sys.stdin.isatty():
        raise LocalflowError(f"{path.name} defines several DAGs ({', '.join(names)}); pass --dag-id.")
    for number, name in enumerate(names, 1):
        print(f"  {number}) {name}")
    answer = input("Which DAG? ").strip()
    return dags[names[int(answer) - 1]] if answer.isdigit() else choose(dags, answer, path)


def main(argv: list[str]) -> int:
    """Parse arguments, run the DAG, and turn its final state into the exit code."""
    parser = argparse.ArgumentParser(prog="python -m localflow dag-test", description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--dag-id")
    args = parser.parse_args(argv)
    path = args.file.resolve()
    if not path.is_file():
        raise LocalflowError(f"{args.file} does not exist.")
    dag = choose(load_dags(path), args.dag_id, path)
    run = dag.test()
    state = getattr(run, "state", None)
    print(f"localflow: {dag.dag_id} finished: {state}")
    return 0 if str(state) == "success" else 1
