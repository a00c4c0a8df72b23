"""F5 to the breakpoint: our "debug this DAG file" configuration against stock Airflow, in the same run.

    .venv/bin/python benchmarks/debug_f5.py [--runs 5] [--dag example_etl] [--failing-runs 2]

Each measurement is what a user waits for: from the moment VS Code would start ``python -m
debugpy.adapter`` to the ``stopped`` event at a breakpoint in a task body, driven over DAP by the same
client as the tests (``testkit/dap.py``). The rows run interleaved, on one throwaway SQLite database
migrated beforehand (as ``.airflow/airflow.db`` is after the first run). Prints a markdown table: median
and spread (min-max) per row, and each median as a fraction of stock ``dag.test()``'s in the same run.
The "prestarted" row is the first F5 after opening the folder: ``--start`` (the folder-open task) ran and
the runner is ready; the memory that idle runner holds (PSS and RSS) is printed below the table. Not a
test: timings depend on the machine and on what else runs on it.

A second table times a DAG whose task fails with one retry left (``retry_delay`` 30 s, a tenth of Airflow's
default): F5 to the end of the run, ours (no retry under ``dag-test``) against stock ``dag.test()``
(which waits out the delay and fails again). "Uncaught Exceptions" is unticked there, so nothing stops.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from localflow.debugging.warm_runner import client, protocol  # noqa: E402
from testkit.dap import DapClient, launch_configuration  # noqa: E402
from testkit.environment import airflow_environment  # noqa: E402
from testkit.native_stack import failing_dag_source  # noqa: E402

BREAKPOINTS = {"example_etl": "summary = summarize(orders)", "example_context": "print(label)"}


class Row(NamedTuple):
    """One configuration to measure: launch.json's arguments, extra environment, and a cold runner or not."""

    config: dict
    env: dict[str, str]
    cold_runner: bool = False
    started_ahead: bool = False  # `--start` (the folder-open task) ran, and the runner is ready


def f5_configurations(dag_file: Path) -> tuple[dict, dict]:
    """launch.json's "Airflow: debug this DAG file" on ``dag_file``: as shipped, and without the warm
    runner (``pythonArgs``), which is what stock rows start from."""
    ours = launch_configuration(
        REPO / ".vscode" / "launch.json",
        "Airflow: debug this DAG file",
        workspace=REPO,
        file=dag_file,
        python=sys.executable,
    )
    return ours, {key: value for key, value in ours.items() if key != "pythonArgs"}


def configurations(dag_id: str) -> dict[str, Row]:
    """The rows: our launch.json configuration (first F5, later ones, without the runner), and stock F5."""
    ours, direct = f5_configurations(REPO / "dags" / f"{dag_id}.py")
    return {
        "localflow, first F5 (starts the warm runner)": Row(ours, {}, cold_runner=True),
        "localflow, first F5, runner prestarted on folder open": Row(
            ours, {}, cold_runner=True, started_ahead=True
        ),
        "localflow `Airflow: debug this DAG file`": Row(ours, {}),
        "localflow, `LOCALFLOW_WARM_RUNNER=off`": Row(ours, {protocol.WARM_RUNNER: "off"}),
        STOCK_ROW: Row({**direct, "args": [*direct["args"], "--stock"]}, {}),
        f"stock `airflow dags test {dag_id}`": Row(
            {**direct, "module": "airflow", "args": ["dags", "test", dag_id]}, {}
        ),
    }


STOCK_ROW = "stock `dag.test()` (`dag-test --stock`)"


def start_ahead(env: dict[str, str]) -> psutil.Process:
    """What the folder-open task does (``--start``), then wait until the runner has done its imports;
    the runner's process."""
    command = [sys.executable, "-m", "localflow.debugging.warm_runner", "--start"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        said = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=True).stdout
        if match := re.search(r"is running \(PID (\d+)\)", said):
            return psutil.Process(int(match[1]))
        time.sleep(0.5)
    raise SystemExit(f"the runner started ahead did not get ready: {said}")


def idle_memory(runner: psutil.Process) -> tuple[float, float]:
    """PSS and RSS of an idle runner, in MiB (PSS counts pages shared with other processes in part)."""
    memory = runner.memory_full_info()
    return memory.pss / 2**20, memory.rss / 2**20


def f5_to_stop(config: dict, env: dict[str, str], dag_file: Path, line: int, log: Path) -> float:
    """Seconds from starting the adapter to the stop at the breakpoint; then let the run finish."""
    started = time.monotonic()
    with DapClient(python=sys.executable, log=log) as client:
        client.start({**config, "env": env}, {dag_file: [line]}, timeout=300)
        stopped = client.wait_event("stopped", 300)
        elapsed = time.monotonic() - started
        client.request("setBreakpoints", {"source": {"path": str(dag_file)}, "breakpoints": []})
        client.request("continue", {"threadId": stopped["threadId"]})
        exited = client.wait_event("exited", 300)
    if exited.get("exitCode") != 0:
        raise SystemExit(f"the debuggee failed (exit {exited.get('exitCode')}); see {log}")
    return elapsed


def f5_to_end(config: dict, env: dict[str, str], log: Path) -> float:
    """Seconds from starting the adapter to the end of a run that fails (exit code 1)."""
    started = time.monotonic()
    with DapClient(python=sys.executable, log=log) as client:
        client.start({**config, "env": env}, {}, timeout=300, exception_filters=[])
        exited = client.wait_event("exited", 900)
    if exited.get("exitCode") != 1:
        raise SystemExit(f"the failing run did not fail (exit {exited.get('exitCode')}); see {log}")
    return time.monotonic() - started


def failing_rows(dags: Path) -> tuple[Path, dict[str, Row]]:
    """The failing DAG in its own DAGs folder, and the two configurations that run it."""
    dag_file = dags / "failing.py"
    dag_file.write_text(failing_dag_source(retries=1, retry_delay=30))
    ours, direct = f5_configurations(dag_file)
    settings = {"AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    return dag_file, {
        "localflow `Airflow: debug this DAG file`": Row(ours, settings),
        STOCK_ROW: Row({**direct, "args": [*direct["args"], "--stock"]}, settings),
    }


def print_table(title: str, results: dict[str, list[float]], baseline: str | None = None) -> None:
    """A markdown table: median and spread per row (none when nothing was measured), and with
    ``baseline`` each median as a fraction of that row's."""
    if not any(results.values()):
        return
    print(f"\n{title} ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})\n")
    reference = statistics.median(results[baseline]) if baseline else None
    print("| configuration | median (s) | min-max (s) |" + (" vs stock `dag.test()` |" if reference else ""))
    print("|---|---:|---:|" + ("---:|" if reference else ""))
    for name, times in results.items():
        ratio = f" {statistics.median(times) / reference:.2f} |" if reference else ""
        print(f"| {name} | {statistics.median(times):.1f} | {min(times):.1f}-{max(times):.1f} |{ratio}")


def main() -> int:
    """Measure every row ``--runs`` times, interleaved, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dag", default="example_etl", choices=sorted(BREAKPOINTS))
    parser.add_argument(
        "--failing-runs", type=int, default=2, help="runs of the failing-task table (0: none)"
    )
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="localflow-bench-"))
    env = airflow_environment(home)  # its own home, a SQLite database and fresh secrets
    try:
        print("preparing: migrating a throwaway SQLite database ...", file=sys.stderr, flush=True)
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
        )
        dag_file = REPO / "dags" / f"{args.dag}.py"
        text = BREAKPOINTS[args.dag]
        line = next(
            number for number, source in enumerate(dag_file.read_text().splitlines(), 1) if text in source
        )
        rows = configurations(args.dag)
        results: dict[str, list[float]] = {name: [] for name in rows}
        memory: list[tuple[float, float]] = []
        total = args.runs * len(rows)
        done = 0
        for _ in range(args.runs):
            for name, row in rows.items():
                done += 1
                print(f"\r[{done}/{total}] {name} ...".ljust(90), end="", file=sys.stderr, flush=True)
                if row.cold_runner:
                    client.stop(env, str(REPO))
                row_env = {**env, **row.env}
                if row.started_ahead:  # the debuggee's environment: this one and the launch's env
                    memory.append(idle_memory(start_ahead({**os.environ, **row_env})))
                results[name].append(f5_to_stop(row.config, row_env, dag_file, line, home / "debuggee.log"))
        print(file=sys.stderr)
        failing: dict[str, list[float]] = {}
        if args.failing_runs:
            (home / "dags").mkdir()
            _, rows = failing_rows(home / "dags")
            failing = {name: [] for name in rows}
            for run in range(args.failing_runs):
                for name, row in rows.items():
                    print(
                        f"\r[failing {run + 1}/{args.failing_runs}] {name} ...".ljust(90),
                        end="",
                        file=sys.stderr,
                    )
                    failing[name].append(f5_to_end(row.config, {**env, **row.env}, home / "failing.log"))
            print(file=sys.stderr)
    finally:
        client.stop(env, str(REPO))
        shutil.rmtree(home, ignore_errors=True)
    print_table(f"F5 to the breakpoint in `{args.dag}` ({args.runs} runs each)", results, STOCK_ROW)
    if memory:
        pss, rss = (statistics.median(values) for values in zip(*memory, strict=True))
        print(
            f"\nThe idle warm runner, ready (median of {len(memory)}): PSS {pss:.0f} MiB, RSS {rss:.0f} MiB"
        )
    if failing:
        print_table(
            f"A task fails with a retry left (retry_delay 30 s): F5 to the end of the run ({args.failing_runs} runs each)",
            failing,
            STOCK_ROW,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
