"""The upgrade rehearsal as a user runs it: ``python3 -m localflow upgrade-check 3.3.2`` on a fresh copy of
the workspace chosen at 3.1.8, with DAG files that a real API change between the two releases breaks, warns
or leaves alone (docs/releases.md, "Rehearsing an upgrade")."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from testkit.environment import REPO
from tests.localflow.test_bootstrap import COPIED, run_localflow

# Each file, and what the table says of it from 3.1.8 to 3.3.2.
DAGS = {
    "plain.py": '''"""A DAG both releases parse and run alike."""
import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["generated"])
def plain():
    @task
    def step() -> int:
        return 1

    step()


plain()
''',
    # airflow.timetables.datasets is gone in 3.3: a new import error.
    "dataset_or_time.py": '''"""A DAG scheduled by DatasetOrTimeSchedule."""
import pendulum
from airflow.sdk import Asset, dag, task
from airflow.timetables.datasets import DatasetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable


@dag(
    schedule=DatasetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"), datasets=[Asset("s3://bucket/raw")]
    ),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    tags=["generated"],
)
def dataset_or_time():
    @task
    def step() -> int:
        return 1

    step()


dataset_or_time()
''',
}


@pytest.mark.releases
def test_upgrade_check_names_what_the_candidate_breaks(tmp_path: Path):
    """The table names the new import error and the unchanged DAG, and the exit code says it got worse."""
    root = tmp_path / "work space"
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            root.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(source.read_bytes())
    shutil.rmtree(root / "dags", ignore_errors=True)
    (root / "dags").mkdir(parents=True)
    for name, text in DAGS.items():
        (root / "dags" / name).write_text(text)
    (root / ".env").write_text("LOCALFLOW_AIRFLOW_VERSION=3.1.8\n")
    assert run_localflow(root, "secrets").returncode == 0

    checked = run_localflow(root, "upgrade-check", "3.3.2")
    output = checked.stdout + checked.stderr
    assert checked.returncode == 1, output
    lines = output.splitlines()
    assert any("dataset_or_time" in line and "new import error" in line for line in lines), output
    assert any("plain" in line and "same" in line for line in lines), output
    assert "apache-airflow" in output, output
