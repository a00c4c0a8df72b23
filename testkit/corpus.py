"""Airflow's own example DAGs as a test corpus: copy a selection into a workspace, parse it, run it, read results.

The examples ship inside the installed apache-airflow (``airflow/example_dags``) and its standard provider
(``airflow/providers/standard/example_dags``). What is compared with stock Airflow, and why each file is
in the selection: ``tests/corpus/test_example_dags.py`` and docs/development.md, "The example DAG corpus".
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from testkit.environment import REPO

# Files copied into the workspace's dags/, relative to the installed ``airflow`` package.
EXAMPLE_FILES = (
    "example_dags/tutorial_taskflow_api.py",
    "example_dags/tutorial_taskflow_templates.py",  # reads sql/tutorial_taskflow_template.sql
    "example_dags/example_xcom.py",
    "example_dags/example_xcomargs.py",
    "example_dags/example_nested_branch_dag.py",
    "example_dags/example_skip_dag.py",
    "example_dags/example_task_group_decorator.py",
    "example_dags/example_dynamic_task_mapping.py",
    "example_dags/example_setup_teardown_taskflow.py",
    "example_dags/example_failed_dag.py",
    "example_dags/example_trigger_target_dag.py",
    "example_dags/example_assets.py",
    "example_dags/example_time_delta_sensor_async.py",
    "providers/standard/example_dags/example_bash_operator.py",
    "providers/standard/example_dags/example_short_circuit_decorator.py",
    "providers/standard/example_dags/example_sensor_decorator.py",
    "providers/standard/example_dags/example_trigger_controller_dag.py",
)
# Helper folders the copied files read (templates_exts=[".sql"] resolves against the DAG file's folder).
HELPER_FOLDERS = ("example_dags/sql",)

# The shipped deferrable sensor waits 30 s; the corpus runs a copy that waits 2 s, under its own dag_id.
SHORT_SENSOR_SOURCE = "example_dags/example_time_delta_sensor_async.py"
SHORT_SENSOR_FILE = "example_time_delta_sensor_async_2s.py"
SHORT_SENSOR_DAG = "example_time_delta_sensor_async_2s"
SHORT_SENSOR_EDITS = (
    ('dag_id="example_time_delta_sensor_async"', f'dag_id="{SHORT_SENSOR_DAG}"'),
    ("delta=datetime.timedelta(seconds=30)", "delta=datetime.timedelta(seconds=2)"),
)


def airflow_package() -> Path:
    """The installed ``airflow`` package's folder, found without importing Airflow."""
    spec = importlib.util.find_spec("airflow")
    assert spec and spec.submodule_search_locations, "apache-airflow is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def copy_examples(dags: Path) -> list[Path]:
    """Copy the selection, its helper folders and the short sensor variant into ``dags``; return the files."""
    package = airflow_package()
    copied = []
    for relative in EXAMPLE_FILES:
        copied.append(Path(shutil.copy2(package / relative, dags / Path(relative).name)))
    for relative in HELPER_FOLDERS:
        shutil.copytree(
            package / relative, dags / Path(relative).name, ignore=shutil.ignore_patterns("__pycache__")
        )
    source = (package / SHORT_SENSOR_SOURCE).read_text()
    for old, new in SHORT_SENSOR_EDITS:
        assert old in source, f"{SHORT_SENSOR_SOURCE} no longer has {old!r}"
        source = source.replace(old, new)
    short = dags / SHORT_SENSOR_FILE
    short.write_text(source)
    copied.append(short)
    return copied


# Run in a subprocess with the environment under test: the folder parsed as the dag-processor parses it.
PARSE_SCRIPT = """
import json, os
from pathlib import Path
from airflow.dag_processing.dagbag import BundleDagBag

folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="dags-folder")
print(json.dumps({
    "dags": {dag_id: sorted(dag.task_dict) for dag_id, dag in bag.dags.items()},
    "files": {dag_id: Path(dag.fileloc).name for dag_id, dag in bag.dags.items()},
    "import_errors": {
        Path(name).name: error.strip().splitlines()[-1] for name, error in bag.import_errors.items()
    },
}))
"""


def run_script(env: dict[str, str], script: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    """``python -c SCRIPT ARGS`` in the repository with ``env``; output captured."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def parse_folder(env: dict[str, str]) -> dict:
    """The DAGs folder of ``env`` parsed by a DagBag: dag_id → task ids, dag_id → file, file → import error."""
    result = run_script(env, PARSE_SCRIPT, timeout=300)
    assert result.returncode == 0, f"parsing failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


# Stock dag.test() of several DAGs in one interpreter: each run is plain dag.test() (``dag-test --stock``),
# but dag.test() builds its in-process Execution API (4.4 s) once, not once per DAG.
STOCK_SCRIPT = """
import json, sys
from pathlib import Path
from localflow.debugging import dagtest

codes = []
for file, dag_id in json.loads(sys.argv[1]):
    codes.append(dagtest.main(file, dag_id, stock=True))
print("exit codes: " + json.dumps(codes))
"""


def stock_dag_tests(env: dict[str, str], runs: Iterable[tuple[Path, str]]) -> dict[str, int]:
    """Run ``dag-test FILE --dag-id ID --stock`` for each (file, dag_id) in one interpreter; exit codes by dag_id."""
    runs = list(runs)
    argument = json.dumps([(str(file), dag_id) for file, dag_id in runs])
    result = run_script(env, STOCK_SCRIPT, argument, timeout=900)
    lines = [line for line in result.stdout.splitlines() if line.startswith("exit codes: ")]
    assert result.returncode == 0 and lines, (
        f"stock runs failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    codes = json.loads(lines[-1].removeprefix("exit codes: "))
    return {dag_id: code for (_file, dag_id), code in zip(runs, codes, strict=True)}


def last_test_runs(database_url: str, dag_ids: Iterable[str]) -> dict[str, tuple[str, dict[str, str]]]:
    """The newest ``dag.test()`` run of each DAG in the metadata database: its state, and each task
    instance's state by ``task_id`` (``task_id[i]`` for mapped instances)."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    found = {}
    try:
        with engine.connect() as connection:
            for dag_id in dag_ids:
                run = connection.execute(
                    sa.text(
                        "SELECT run_id, state FROM dag_run WHERE dag_id = :dag_id AND triggered_by = 'TEST'"
                        " ORDER BY id DESC LIMIT 1"
                    ),
                    {"dag_id": dag_id},
                ).first()
                if run is None:
                    continue
                rows = connection.execute(
                    sa.text(
                        "SELECT task_id, map_index, state FROM task_instance"
                        " WHERE dag_id = :dag_id AND run_id = :run_id"
                    ),
                    {"dag_id": dag_id, "run_id": run.run_id},
                )
                tasks = {
                    row.task_id + (f"[{row.map_index}]" if row.map_index >= 0 else ""): str(row.state)
                    for row in rows
                }
                found[dag_id] = (str(run.state), tasks)
    finally:
        engine.dispose()
    return found
