"""Idle memory of the compose stack, by the engine's own accounting: Airflow's stock settings against ours.

    .venv/bin/python -m benchmarks.compose_memory [--idle 20]      (needs ../shared/containers; ~3 min)

For each configuration, in the same run: a fresh copy of the workspace, ``docker compose up --wait`` as a
desktop user (the tests' harness, ``testkit/containers.py``), two runs of ``example_etl`` triggered
through the REST API, ``--idle`` seconds of rest, then ``docker stats --no-stream`` (the cgroup's memory,
which is what a container costs: containers share no pages) and the anonymous part of it. "stock" sets
every setting below the tuning line of ``localflow/config/airflow.env`` back to Airflow's default with a compose
override file (a service's ``environment`` beats its ``env_file``), runs Airflow's own ``airflow api-server``
(not ``localflow.execution_api``'s) and runs without the dag watcher, which stock Airflow does not have.
Prints a markdown table in MiB. Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testkit.containers import DesktopUser, Engine, Stack, make_base, stack_on_fresh_copy  # noqa: E402
from testkit.stock import airflow_default, tuned_settings  # noqa: E402

DAG_ID = "example_etl"
WATCHER = "airflow-dag-watcher"
UNITS = {"B": 1 / 2**20, "KiB": 1 / 2**10, "MiB": 1.0, "GiB": 2**10}


def airflow_services() -> list[str]:
    """The compose services that run Airflow (all but the database)."""
    services = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["services"]
    return [name for name in services if name != "postgres"]


def stock_override(stack: Stack) -> list[str]:
    """Write the override that restores Airflow's defaults; return the ``docker compose`` file options."""
    stock = {name: airflow_default(name) for name in tuned_settings()}
    override = {"services": {name: {"environment": stock} for name in airflow_services()}}
    # Airflow's own api-server command, with its copy of the Execution API's routes per API version.
    override["services"]["airflow-api-server"]["command"] = ["airflow", "api-server", "--proxy-headers"]
    path = stack.workspace / "compose.stock.yaml"
    path.write_text(yaml.safe_dump(override))
    return ["-f", "docker-compose.yaml", "-f", path.name]


def mebibytes(usage: str) -> float:
    """``199.5MiB / 23.4GiB`` (docker stats' MemUsage) in MiB."""
    number, unit = re.match(r"([\d.]+)\s*([KMG]?i?B)", usage).groups()
    return float(number) * UNITS[unit]


def measure(stack: Stack, config: str, idle: float) -> dict[str, float]:
    """Bring the stack up, run the DAG twice, rest, and read each container's memory (MiB) by service."""
    files = stock_override(stack) if config == "stock" else []
    scale = ["--scale", f"{WATCHER}=0"] if config == "stock" else []
    stack.compose(*files, "up", "--wait", "--wait-timeout", "600", *scale, timeout=900)
    stack.wait_for_dags((DAG_ID,))
    for _ in range(2):
        assert stack.run_dag(DAG_ID)["state"] == "success"
    time.sleep(idle)
    output = stack.engine.docker("stats", "--no-stream", "--format", "{{json .}}").stdout
    prefix = f"{stack.project}-"
    usage = {}
    for line in output.splitlines():
        row = json.loads(line)
        if row["Name"].startswith(prefix):
            service = row["Name"].removeprefix(prefix).rsplit("-", 1)[0]
            usage[service] = mebibytes(row["MemUsage"])
            usage[f"{service} (anon)"] = anonymous_memory(stack, row["Name"])
    return usage


def anonymous_memory(stack: Stack, container: str) -> float:
    """The container's anonymous memory (MiB; ``anon`` in cgroup v2's memory.stat, ``total_rss`` in v1's).

    docker stats also counts page cache, which the kernel charges to the first container that reads a file
    (Python's packages, the same in every container), so it moves between services from run to run.
    """
    read = "cat /sys/fs/cgroup/memory.stat 2>/dev/null || cat /sys/fs/cgroup/memory/memory.stat"
    stat = stack.engine.docker("exec", container, "sh", "-c", read, check=False).stdout
    values = dict(line.split() for line in stat.splitlines() if line.count(" ") == 1)
    return int(values.get("anon", values.get("total_rss", 0))) / 2**20


def table(results: dict[str, dict[str, float]], idle: float) -> str:
    """Markdown: MiB per service and configuration, the Airflow total, and ours/stock."""
    services = sorted({name for usage in results.values() for name in usage})
    lines = [
        f"Idle memory of the compose stack (`docker stats`, {idle:.0f} s after two runs of {DAG_ID})",
        "",
        "| service (MiB) | stock | ours | ours/stock |",
        "|---|---:|---:|---:|",
    ]

    def row(name: str, stock: float | None, ours: float | None) -> str:
        cells = [f"{value:.0f}" if value is not None else "n/a" for value in (stock, ours)]
        ratio = f"{ours / stock:.2f}" if stock and ours is not None else "n/a"
        return f"| {name} | {cells[0]} | {cells[1]} | {ratio} |"

    for name in services:
        lines.append(row(name, results["stock"].get(name), results["ours"].get(name)))
    for kind, suffix in (("", ""), (" (anon)", " (anon)")):
        totals = {
            config: sum(
                value
                for name, value in usage.items()
                if not name.startswith("postgres") and name.endswith(" (anon)") == bool(suffix)
            )
            for config, usage in results.items()
        }
        lines.append(row(f"**Airflow total{kind}** (all but postgres)", totals["stock"], totals["ours"]))
    return "\n".join(lines)


def main() -> int:
    """Measure stock, then ours, each on a fresh copy torn down afterwards; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of rest before measuring")
    args = parser.parse_args()
    engine = Engine.start()
    base = make_base()
    try:
        user = DesktopUser.create(engine, base)
        results = {}
        for config in ("stock", "ours"):
            print(
                f"{config}: docker compose up, two runs, {args.idle:.0f} s idle ...",
                file=sys.stderr,
                flush=True,
            )
            with stack_on_fresh_copy(engine, user, base, f"memory-{config}") as stack:
                results[config] = measure(stack, config, args.idle)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        engine.stop()
    print(table(results, args.idle))
    return 0


if __name__ == "__main__":
    sys.exit(main())
