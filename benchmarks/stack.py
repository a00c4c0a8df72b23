"""The native stack with Airflow's stock settings against localflow's, measured in one run.

    python3 -m localflow bench [--repetitions 3] [--timeout 30] [--configs stock,ours,celery]

(or ``.venv/bin/python -m benchmarks.stack``). For each configuration it starts ``python -m localflow up``
on a fresh database of the real PostgreSQL server (``LOCALFLOW_TEST_POSTGRES``, default
``postgresql+psycopg2://postgres@127.0.0.1:5432``) in a throwaway workspace, once per repetition, and
measures:

- how long a save takes to show in the REST API: a new DAG file, an edit, a deletion, an import error
  appearing and fixed, and an edit of a ``plugins/`` helper that a DAG imports;
- cold start to all components healthy (the database is already migrated);
- trigger to success of the 3-task ``example_etl``, and ``dag.test()`` of it;
- idle CPU, PSS and RSS of each component and in total (PSS counts pages shared by forked workers once).

"stock" sets every option below the tuning line of ``localflow/airflow.env`` back to Airflow's default,
turns the dag watcher off and starts each component as its own ``airflow`` process
(``LOCALFLOW_PRELOAD=off``); "ours" is the file as it is, with the components forked from the supervisor
(``localflow/stack/preload.py``). The supervisor (``python -m localflow up``) counts in the memory of both.
Everything else (LocalExecutor, PostgreSQL, ports, auth) is the same. "celery" is "ours" switched to the
CeleryExecutor by ``COMPOSE_PROFILES=celery``, with two workers on a Redis of its own
(``testkit/broker.py``); its column shows what Celery costs (its ratio is to "ours"). A save that is not
visible within ``--timeout`` counts as the timeout and shows as "> N"; so does a DAG run still going after
it. Prints a markdown table: median, min-max, and the ratio ours/stock.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from localflow import settings
from localflow.polling import WaitTimeout, seconds_until, wait_until
from localflow.rest import AirflowClient
from testkit.broker import private_redis
from testkit.environment import PostgresDatabases, free_port, run_airflow
from testkit.native_stack import (
    RunningStack,
    components,
    dag_source,
    make_workspace,
    stack_environment,
    start_up,
)
from testkit.stock import stock_overrides

CONFIGS = ("stock", "ours", "celery")
CELERY_WORKERS = 2
SUPERVISOR = "supervisor"  # `python -m localflow up`: with preloading, it holds the pages all share
POLL = 0.05
HELPER_TEMPLATE = '"""Benchmark helper."""\n\nTASK_ID = "{task_id}"\n'


# --- measuring ----------------------------------------------------------------------------------------


def tree(process: psutil.Process) -> list[psutil.Process]:
    """A process and all its descendants (forked workers, parsing processes, the trigger runner)."""
    return [process, *process.children(recursive=True)]


def memory(stack: RunningStack) -> dict[str, tuple[float, float]]:
    """(PSS, RSS) in MB of each component's process tree, and of the supervisor itself."""
    result = {}
    members = {name: tree(process) for name, process in components(stack).items()}
    members[SUPERVISOR] = [psutil.Process(stack.process.pid)]
    for name, processes in members.items():
        pss = rss = 0
        for member in processes:
            try:
                info = member.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            pss += info.pss
            rss += info.rss
        result[name] = (pss / 2**20, rss / 2**20)
    return result


def cpu_seconds(stack: RunningStack) -> float:
    """CPU time used so far by the supervisor and every component's process tree."""
    total = 0.0
    for member in tree(psutil.Process(stack.process.pid)):
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def component_cpu_seconds(stack: RunningStack) -> dict[str, dict[int, float]]:
    """CPU time used so far by each process (by pid) of each component's tree and of the supervisor."""
    members = {name: tree(process) for name, process in components(stack).items()}
    members[SUPERVISOR] = [psutil.Process(stack.process.pid)]
    result: dict[str, dict[int, float]] = {}
    for name, processes in members.items():
        result[name] = {}
        for member in processes:
            try:
                times = member.cpu_times()
            except psutil.NoSuchProcess:
                continue
            result[name][member.pid] = times.user + times.system
    return result


@dataclass
class Api:
    """The REST calls the scenarios poll, on the stack's client."""

    client: AirflowClient

    def get(self, path: str) -> tuple[int, dict]:
        """GET ``path``."""
        return self.client.request("GET", path)

    def dag_active(self, dag_id: str) -> bool:
        """The DAG is in the API and not stale."""
        status, body = self.get(f"/api/v2/dags/{dag_id}")
        return status == 200 and not body.get("is_stale")

    def dag_gone(self, dag_id: str) -> bool:
        """The DAG is stale or absent (its file was deleted)."""
        status, body = self.get(f"/api/v2/dags/{dag_id}")
        return status == 404 or bool(body.get("is_stale"))

    def has_task(self, dag_id: str, task_id: str) -> bool:
        """The serialized DAG has ``task_id``."""
        status, body = self.get(f"/api/v2/dags/{dag_id}/tasks")
        return status == 200 and task_id in {task["task_id"] for task in body.get("tasks", [])}

    def import_error(self, file_name: str) -> bool:
        """An import error is recorded for ``file_name``."""
        status, body = self.get("/api/v2/importErrors?limit=100")
        return status == 200 and any(
            error["filename"].endswith(file_name) for error in body.get("import_errors", [])
        )


# --- the run ------------------------------------------------------------------------------------------


@dataclass
class Results:
    """Samples by metric, for one configuration."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, metric: str, value: float) -> None:
        """Record one sample."""
        self.samples.setdefault(metric, []).append(value)


class Progress:
    """One status line, rewritten in place."""

    def __init__(self, total_steps: int) -> None:
        self.started = time.monotonic()
        self.total = total_steps
        self.done = 0

    def show(self, label: str, step: bool = False) -> None:
        """Show what runs now (``step`` counts one more finished step)."""
        self.done += step
        elapsed = time.monotonic() - self.started
        line = f"[{self.done}/{self.total}, {elapsed / 60:4.1f} min] {label}"
        print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)


SAVE_SCENARIOS = (
    "new file → visible",
    "edit → visible",
    "import error → visible",
    "import error fixed → visible",
    "plugins/ helper edit → visible",
    "deleted file → gone",
)


def seed_workspace(workspace: Path, repetitions: int) -> None:
    """Files the scenarios edit, present before the stack starts (so stock knows them too)."""
    dags, plugins = workspace / "dags", workspace / "plugins"
    (dags / "bench_edit.py").write_text(dag_source("bench_edit", '"v0"'))
    (plugins / "bench_helper.py").write_text(HELPER_TEMPLATE.format(task_id="h0"))
    (dags / "bench_uses_helper.py").write_text(
        dag_source("bench_uses_helper", "bench_helper.TASK_ID", imports="\nimport bench_helper\n")
    )
    for repetition in range(repetitions):
        (dags / f"bench_delete_{repetition}.py").write_text(dag_source(f"bench_delete_{repetition}", '"t"'))


def save_scenarios(
    api: Api, workspace: Path, repetition: int, *, timeout: float, results: Results, progress: Progress
) -> None:
    """Each kind of save, timed from the moment the file is written until the API shows it."""
    dags, plugins = workspace / "dags", workspace / "plugins"
    r = repetition
    steps: list[tuple[str, Path, str | None, Callable[[], bool]]] = [
        (
            "new file → visible",
            dags / f"bench_new_{r}.py",
            dag_source(f"bench_new_{r}", '"t"'),
            lambda: api.dag_active(f"bench_new_{r}"),
        ),
        (
            "edit → visible",
            dags / "bench_edit.py",
            dag_source("bench_edit", f'"e{r}"'),
            lambda: api.has_task("bench_edit", f"e{r}"),
        ),
        (
            "import error → visible",
            dags / "bench_edit.py",
            dag_source("bench_edit", f'"e{r}"') + "\nthis is not python\n",
            lambda: api.import_error("bench_edit.py"),
        ),
        (
            "import error fixed → visible",
            dags / "bench_edit.py",
            dag_source("bench_edit", f'"f{r}"'),
            lambda: not api.import_error("bench_edit.py") and api.has_task("bench_edit", f"f{r}"),
        ),
        (
            "plugins/ helper edit → visible",
            plugins / "bench_helper.py",
            HELPER_TEMPLATE.format(task_id=f"h{r + 1}"),
            lambda: api.has_task("bench_uses_helper", f"h{r + 1}"),
        ),
        (
            "deleted file → gone",
            dags / f"bench_delete_{r}.py",
            None,
            lambda: api.dag_gone(f"bench_delete_{r}"),
        ),
    ]
    for metric, path, content, visible in steps:
        progress.show(f"{metric} ...")
        time.sleep(1.0)  # let the previous save settle
        if content is None:
            path.unlink()
        else:
            path.write_text(content)
        results.add(metric, seconds_until(visible, timeout, interval=POLL))
        progress.show(metric, step=True)


def trigger_to_success(stack: RunningStack, timeout: float, dag_id: str = "example_etl") -> float:
    """Seconds from the trigger request to the run's success, at most ``timeout``.

    A run still going at ``timeout`` counts as ``timeout``: with stock settings the first run after a start
    can wait minutes (its first task gives up on the api-server's cold execution API and retries 5 min
    later). A failed run is an error, not a number.
    """
    run_id = stack.api.trigger(dag_id, unpause=False)
    started = time.monotonic()
    try:
        run = stack.api.wait_for_run(dag_id, run_id, timeout, interval=POLL)
    except WaitTimeout:
        return timeout
    elapsed = time.monotonic() - started
    if run["state"] != "success":
        raise RuntimeError(f"{dag_id} run {run_id} failed:\n{stack.output()[-2000:]}")
    return elapsed


def dag_test(config: str, workspace: Path, env: dict[str, str]) -> float:
    """Seconds for ``dag.test()`` of example_etl: Airflow's CLI for stock, ``localflow dag-test`` for ours."""
    full = settings.native_environment(workspace, base=env)
    command = (
        [sys.executable, "-m", "airflow", "dags", "test", "example_etl"]
        if config == "stock"
        else [sys.executable, "-m", "localflow", "dag-test", str(workspace / "dags" / "example_etl.py")]
    )
    started = time.monotonic()
    result = subprocess.run(command, env=full, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return time.monotonic() - started


def run_config(
    config: str,
    databases: PostgresDatabases,
    *,
    repetitions: int,
    timeout: float,
    root: Path,
    progress: Progress,
) -> Results:
    """All repetitions of one configuration, each a cold start of the stack on the same database."""
    results = Results()
    workspace = make_workspace(root / config)
    seed_workspace(workspace, repetitions)
    if config == "celery":
        with private_redis() as redis:
            celery = {"COMPOSE_PROFILES": "celery", "AIRFLOW__CELERY__BROKER_URL": redis.url}
            celery["LOCALFLOW_CELERY_WORKERS"] = str(CELERY_WORKERS)
            env = stack_environment(workspace, databases.create(), **celery)
            return repeat(
                config,
                workspace,
                env,
                repetitions=repetitions,
                timeout=timeout,
                progress=progress,
                results=results,
            )
    env = stack_environment(workspace, databases.create(), **({} if config == "ours" else stock_overrides()))
    return repeat(
        config, workspace, env, repetitions=repetitions, timeout=timeout, progress=progress, results=results
    )


def repeat(
    config: str,
    workspace: Path,
    env: dict[str, str],
    *,
    repetitions: int,
    timeout: float,
    progress: Progress,
    results: Results,
) -> Results:
    """Cold starts of one configuration's stack, measuring each."""
    progress.show(f"{config}: migrating a fresh database ...")
    run_airflow(settings.native_environment(workspace, base=env), "db", "migrate")
    for repetition in range(repetitions):
        label = f"{config} {repetition + 1}/{repetitions}"
        # Fresh ports each start: the last stack's may still be held for a moment after it stopped.
        env["AIRFLOW__API__PORT"] = str(free_port())
        progress.show(f"{label}: cold start ...")
        started = time.monotonic()
        stack = start_up(workspace, env)
        try:
            stack.wait_healthy(timeout=300)
            results.add("cold start → all healthy", time.monotonic() - started)
            progress.show(f"{label}: cold start", step=True)
            api = Api(stack.api)
            # Not timed: the stack has parsed the folder it started with.
            wait_until(
                lambda api=api: api.dag_active("example_etl") and api.dag_active("bench_uses_helper"),
                120,
                what="example_etl and bench_uses_helper parsed",
            )
            progress.show(f"{label}: saves")
            save_scenarios(api, workspace, repetition, timeout=timeout, results=results, progress=progress)
            stack.api.request("PATCH", "/api/v2/dags/example_etl", {"is_paused": False})
            for _ in range(2):
                progress.show(f"{label}: trigger → success ...")
                results.add("trigger → success (3 tasks)", trigger_to_success(stack, timeout))
            progress.show(f"{label}: trigger → success", step=True)
            progress.show(f"{label}: idle ...")
            time.sleep(3)
            before, window = cpu_seconds(stack), 8.0
            before_by_component = component_cpu_seconds(stack)
            time.sleep(window)
            results.add("idle CPU (% of one core)", 100 * (cpu_seconds(stack) - before) / window)
            for name, used in component_cpu_seconds(stack).items():
                if config == "stock" and name == "dag-watcher":
                    continue  # off in stock, as for memory below
                earlier = before_by_component.get(name, {})
                spent = sum(seconds - earlier.get(pid, 0.0) for pid, seconds in used.items())
                results.add(f"idle CPU {name} (% of one core)", 100 * spent / window)
            measured = memory(stack)
            if config == "stock":
                measured.pop("dag-watcher", None)  # off in stock: not part of Airflow's stack
            for name, (pss, rss) in measured.items():
                results.add(f"idle PSS {name} (MB)", pss)
                results.add(f"idle RSS {name} (MB)", rss)
            results.add("idle PSS total (MB)", sum(pss for pss, _ in measured.values()))
            workers = [pss for name, (pss, _) in measured.items() if name.startswith("worker-")]
            if workers:
                results.add("idle PSS per Celery worker (MB)", sum(workers) / len(workers))
            results.add("idle RSS total (MB)", sum(rss for _, rss in measured.values()))
            progress.show(f"{label}: idle", step=True)
        finally:
            stack.stop()
        if config != "celery":  # dag.test() runs in one process, whatever the executor
            progress.show(f"{label}: dag.test() ...")
            results.add("dag.test() example_etl", dag_test(config, workspace, env))
        progress.show(f"{label}: dag.test()", step=True)
    return results


# --- the table ----------------------------------------------------------------------------------------

CAPPED = (*SAVE_SCENARIOS, "trigger → success (3 tasks)")  # measured up to --timeout
GOALS = {
    **dict.fromkeys(SAVE_SCENARIOS, "≤ 2 (median)"),
    "trigger → success (3 tasks)": "≤ 5",
    "idle PSS total (MB)": "< 500",
}


def unit(metric: str) -> str:
    """The unit a metric is shown in."""
    return "" if "(MB)" in metric or "%" in metric else " s"


def cell(values: list[float] | None, metric: str, timeout: float) -> str:
    """Median and range; a median at the timeout shows as "> timeout"."""
    if not values:
        return "n/a"
    median = statistics.median(values)
    decimals = 0 if "(MB)" in metric else 1 if "%" in metric else 2
    if unit(metric) and median >= timeout and metric in CAPPED:
        return f"> {timeout:.0f} s"
    text = f"{median:.{decimals}f}{unit(metric)}"
    if len(values) > 1:
        text += f" ({min(values):.{decimals}f}-{max(values):.{decimals}f})"
    return text


def table(results: dict[str, Results], timeout: float, repetitions: int) -> str:
    """The markdown table: one row per metric, median (min-max), ratio ours/stock."""
    metrics: list[str] = []
    for config in CONFIGS:
        metrics += [metric for metric in results[config].samples if metric not in metrics]
    celery = bool(results["celery"].samples)
    lines = [
        f"| metric ({repetitions} runs: median (min-max)) | stock Airflow | localflow | ours/stock | goal |"
        + (f" localflow on Celery ({CELERY_WORKERS} workers) | Celery/ours |" if celery else ""),
        "|---|---|---|---|---|" + ("---|---|" if celery else ""),
    ]
    for metric in metrics:
        stock, ours = results["stock"].samples.get(metric), results["ours"].samples.get(metric)
        line = (
            f"| {metric} | {cell(stock, metric, timeout)} | {cell(ours, metric, timeout)} "
            f"| {ratio(stock, ours, metric, timeout)} | {GOALS.get(metric, '')} |"
        )
        if celery:
            on_celery = results["celery"].samples.get(metric)
            line += f" {cell(on_celery, metric, timeout)} | {ratio(ours, on_celery, metric, timeout)} |"
        lines.append(line)
    return "\n".join(lines)


def ratio(base: list[float] | None, other: list[float] | None, metric: str, timeout: float) -> str:
    """Median of ``other`` over median of ``base``; "< x" when ``base`` hit the timeout."""
    if not base or not other or statistics.median(base) <= 0:
        return "n/a"
    value = statistics.median(other) / statistics.median(base)
    capped = metric in CAPPED and statistics.median(base) >= timeout
    return f"< {value:.2f}" if capped else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    """Run both configurations and print the table."""
    parser = argparse.ArgumentParser(prog="python -m localflow bench", description=__doc__.split("\n")[0])
    parser.add_argument("--repetitions", type=int, default=3, help="cold starts per configuration")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="longest wait for a save to show or a run to succeed (s)"
    )
    parser.add_argument(
        "--configs", default="stock,ours", help="stock,ours (default), celery: ours on the CeleryExecutor"
    )
    options = parser.parse_args(argv)
    configs = [config.strip() for config in options.configs.split(",") if config.strip()]
    steps_per_repetition = 1 + len(SAVE_SCENARIOS) + 3
    progress = Progress(len(configs) * options.repetitions * steps_per_repetition)
    root = Path(tempfile.mkdtemp(prefix="localflow-bench-"))
    databases = PostgresDatabases()
    results = {config: Results() for config in CONFIGS}
    try:
        for config in configs:
            results[config] = run_config(
                config,
                databases,
                repetitions=options.repetitions,
                timeout=options.timeout,
                root=root,
                progress=progress,
            )
    finally:
        databases.drop_all()
        shutil.rmtree(root, ignore_errors=True)
        print(file=sys.stderr)
    print(
        f"\nNative stack on PostgreSQL, {psutil.cpu_count()} CPUs, `python3 -m localflow bench "
        f"--repetitions {options.repetitions} --timeout {options.timeout:g}`:\n"
    )
    print(table(results, options.timeout, options.repetitions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
