"""The native stack with Airflow's stock settings, localflow's, and ``airflow standalone``, in one run.

    python3 -m localflow bench [--repetitions 3] [--timeout 30] [--idle-window 30] [--files 300]
                               [--database postgresql (default), sqlite]
                               [--configs stock,ours (default); also standalone, celery]

(or ``.venv/bin/python -m benchmarks.stack``). For each configuration it starts the stack in a throwaway
workspace, once per repetition (a cold start; the database is migrated beforehand), and measures:

- how long a save takes to show in the REST API: a new DAG file, an edit, a deletion, an import error
  appearing and fixed, and an edit of a ``plugins/`` helper that a DAG imports;
- cold start to all components healthy (``/api/v2/monitor/health``);
- trigger to success of the 3-task ``example_etl``, twice right after the saves, and once more after a
  minute in which nothing happened (no saves, no runs, no API calls): a scheduler that is quick only right
  after activity shows there;
- idle CPU of each component and in total over the last ``--idle-window`` seconds (default 30, as long as
  Airflow's periodic rescans) of that quiet minute, then PSS and RSS of each component and in total (PSS
  counts pages shared by forked workers once);
- ``dag.test()`` of ``example_etl`` (not for standalone and celery: the same as stock and ours);
- once per configuration, after the last repetition's runs and on its stack: ``--files`` small DAG files
  (default 300, 0: not measured) written into ``dags/`` at once, the time until the API lists them all
  (up to ``--files-timeout``, default 300 s), then, 90 s later (once each periodic reparse has begun),
  idle CPU over the window and PSS with them loaded; the files are removed again before ``dag.test()``.

"stock" is ``python -m localflow up`` with every option below the tuning line of ``localflow/config/airflow.env``
set back to Airflow's default, the dag watcher off and each component its own ``airflow`` process
(``LOCALFLOW_PRELOAD=off``); "ours" is the file as it is, with the components forked from the supervisor
(``localflow/stack/preload.py``). Both use a fresh database on the real PostgreSQL server
(``LOCALFLOW_TEST_POSTGRES``, default ``postgresql+psycopg2://postgres@127.0.0.1:5432``), or with
``--database sqlite`` the workspace's SQLite file, as a fresh clone's ``up`` does; the supervisor
counts in their memory. "standalone" is ``airflow standalone`` as a user without Docker would start it
(``testkit/standalone.py``): Airflow's defaults in an ``AIRFLOW_HOME`` of its own, which means SQLite and
32 executor workers, with the workspace's ``dags/`` and ``plugins/``, no example DAGs and free ports; the
``airflow standalone`` process counts as its supervisor. "celery" is "ours" switched to the CeleryExecutor
by ``COMPOSE_PROFILES=celery``, with two workers on a Redis of its own (``testkit/broker.py``); its column
shows what Celery costs (its ratio is to "ours"). A save that is not visible within ``--timeout`` counts
as the timeout and shows as "> N"; so does a DAG run still going after it. Prints a markdown table:
median, min-max, the ratios ours/stock and ours/standalone, and footnotes on what standalone ran with.
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

from localflow.config import settings
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
from testkit.standalone import (
    StandaloneStack,
    effective_settings,
    fresh_ports,
    set_admin_password,
    standalone_environment,
    start_standalone,
)
from testkit.stock import stock_overrides

CONFIGS = ("stock", "ours", "standalone", "celery")
DEFAULT_CONFIGS = "stock,ours"  # standalone adds about as long as stock: over 15 min at 2 repetitions
CELERY_WORKERS = 2
# `python -m localflow up` (with preloading it holds the pages all share), or `airflow standalone`.
SUPERVISOR = "supervisor"
POLL = 0.05
IDLE_SETTLE = 3.0  # s after the last activity before an idle window starts
QUIET_MINUTE = 60.0  # nothing happens for this long before the last trigger
FILES_SETTLE = 90.0  # s after the many files are all visible: past each column's periodic reparse (30, 60 s)
MANY_FILES_PREFIX = "bench_many_"
# What the standalone column's footnote reports, as Airflow resolves it there.
STANDALONE_SETTINGS = (
    "database.sql_alchemy_conn",
    "core.executor",
    "core.parallelism",
    "dag_processor.refresh_interval",
)
Stack = RunningStack | StandaloneStack
HELPER_TEMPLATE = '"""Benchmark helper."""\n\nTASK_ID = "{task_id}"\n'


# --- measuring ----------------------------------------------------------------------------------------


def tree(process: psutil.Process) -> list[psutil.Process]:
    """A process and all its descendants (forked workers, parsing processes, the trigger runner)."""
    return [process, *process.children(recursive=True)]


def memory(stack: Stack) -> dict[str, tuple[float, float]]:
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


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time used so far by each component's process tree and by the supervisor.

    A process's own time plus that of its children it has waited for: a parsing process or an executor
    worker that ends between two readings still counts, and the difference never goes negative.
    """
    members = {name: tree(process) for name, process in components(stack).items()}
    members[SUPERVISOR] = [psutil.Process(stack.process.pid)]
    result: dict[str, float] = {}
    for name, processes in members.items():
        result[name] = 0.0
        for member in processes:
            try:
                times = member.cpu_times()
            except psutil.NoSuchProcess:
                continue
            result[name] += times.user + times.system + times.children_user + times.children_system
    return result


@dataclass
class IdleSample:
    """What a stack used over an idle window: CPU in % of one core, in total and by component; memory."""

    cpu: float
    cpu_by_component: dict[str, float]
    memory: dict[str, tuple[float, float]]

    @property
    def pss_total(self) -> float:
        """PSS of every component and the supervisor, in MB."""
        return sum(pss for pss, _ in self.memory.values())


def idle_sample(stack: Stack, window: float) -> IdleSample:
    """CPU over the next ``window`` seconds, then memory, of a stack left alone meanwhile."""
    before = cpu_seconds(stack)
    time.sleep(window)
    by_component = {
        name: 100 * (seconds - before.get(name, 0.0)) / window for name, seconds in cpu_seconds(stack).items()
    }
    return IdleSample(sum(by_component.values()), by_component, memory(stack))


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

    def active_dags(self, dag_id_part: str) -> int:
        """How many DAGs that are not stale have ``dag_id_part`` in their id."""
        status, body = self.get(f"/api/v2/dags?dag_id_pattern={dag_id_part}&limit=1")
        return body.get("total_entries", 0) if status == 200 else 0


# --- the run ------------------------------------------------------------------------------------------


@dataclass
class Results:
    """Samples by metric, for one configuration."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # footnotes on what the configuration ran with

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


def trigger_to_success(stack: Stack, timeout: float, dag_id: str = "example_etl") -> float:
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


def record_idle(config: str, sample: IdleSample, results: Results) -> None:
    """The idle rows: CPU and memory of each component and in total."""
    cpu_by_component, measured = dict(sample.cpu_by_component), dict(sample.memory)
    if config == "stock":  # the dag watcher is off in stock: not part of Airflow's stack
        cpu_by_component.pop("dag-watcher", None)
        measured.pop("dag-watcher", None)
    results.add("idle CPU (% of one core)", sample.cpu)
    for name, percent in cpu_by_component.items():
        results.add(f"idle CPU {name} (% of one core)", percent)
    for name, (pss, rss) in measured.items():
        results.add(f"idle PSS {name} (MB)", pss)
        results.add(f"idle RSS {name} (MB)", rss)
    results.add("idle PSS total (MB)", sum(pss for pss, _ in measured.values()))
    workers = [pss for name, (pss, _) in measured.items() if name.startswith("worker-")]
    if workers:
        results.add("idle PSS per Celery worker (MB)", sum(workers) / len(workers))
    results.add("idle RSS total (MB)", sum(rss for _, rss in measured.values()))


def quiet_minute_metric(window: float) -> str:
    """The row of the trigger after the quiet minute (longer when the idle window needs more)."""
    return f"trigger → success after {quiet_seconds(window):.0f} s idle (3 tasks)"


def quiet_seconds(window: float) -> float:
    """How long the stack is left alone before the last trigger: a minute, or the idle window and its settle."""
    return max(QUIET_MINUTE, IDLE_SETTLE + window)


def many_files_metrics(count: int) -> tuple[str, str, str]:
    """The rows of the many-files scenario."""
    return (
        f"{count} new files → all visible",
        f"idle CPU with {count} files (% of one core)",
        f"idle PSS total with {count} files (MB)",
    )


def many_files(
    stack: Stack,
    workspace: Path,
    count: int,
    *,
    timeout: float,
    window: float,
    results: Results,
    drop_watcher: bool,
) -> None:
    """``count`` one-task DAG files written into dags/ at once: until the API lists them all, then idle.

    The files are removed again at the end (the stack keeps their DAGs, as stale ones).
    """
    visible, cpu, pss = many_files_metrics(count)
    api = Api(stack.api)
    paths = [workspace / "dags" / f"{MANY_FILES_PREFIX}{number}.py" for number in range(count)]
    time.sleep(1.0)  # let the previous run settle
    try:
        started = time.monotonic()
        for number, path in enumerate(paths):
            path.write_text(dag_source(f"{MANY_FILES_PREFIX}{number}", '"t"'))
        try:
            wait_until(lambda: api.active_dags(MANY_FILES_PREFIX) >= count, timeout, interval=0.5)
            results.add(visible, time.monotonic() - started)
        except WaitTimeout:
            results.add(visible, timeout)
        time.sleep(FILES_SETTLE)
        sample = idle_sample(stack, window)
        results.add(cpu, sample.cpu)
        if drop_watcher:  # as in the other idle rows of stock
            sample.memory.pop("dag-watcher", None)
        results.add(pss, sample.pss_total)
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def standalone_note(found: dict[str, str], home: Path) -> str:
    """The footnote on what ``airflow standalone`` resolved its settings to."""
    shown = ", ".join(
        f"`{option}` {value.replace(str(home), '$AIRFLOW_HOME')}" for option, value in found.items()
    )
    database = found["database.sql_alchemy_conn"].split(":", 1)[0]
    return (
        f"airflow standalone ran with Airflow's defaults in an AIRFLOW_HOME of its own: {shown}"
        + (" (SQLite is Airflow's default database)" if database.startswith("sqlite") else "")
        + "; no example DAGs, the workspace's dags/ and plugins/, free ports. Its dag.test() is stock's."
    )


def database_url(options: argparse.Namespace, databases: PostgresDatabases) -> str | None:
    """A fresh PostgreSQL database, or None: the workspace's own SQLite file (the README's first command)."""
    return databases.create() if options.database == "postgresql" else None


def run_config(
    config: str,
    databases: PostgresDatabases,
    *,
    options: argparse.Namespace,
    root: Path,
    progress: Progress,
) -> Results:
    """All repetitions of one configuration, each a cold start of the stack on the same database."""
    results = Results()
    workspace = make_workspace(root / config)
    seed_workspace(workspace, options.repetitions)
    if config == "standalone":
        home = workspace / "airflow-home"
        password = set_admin_password(home)
        env = standalone_environment(workspace, home)
        results.notes.append(standalone_note(effective_settings(env, *STANDALONE_SETTINGS), home))

        def launch() -> Stack:
            env.update(fresh_ports())
            return start_standalone(env, password, workspace / "standalone.out")

        return repeat(
            config, workspace, env, env, launch, options=options, progress=progress, results=results
        )
    if config == "celery":
        with private_redis() as redis:
            celery = {"COMPOSE_PROFILES": "celery", "AIRFLOW__CELERY__BROKER_URL": redis.url}
            celery["LOCALFLOW_CELERY_WORKERS"] = str(CELERY_WORKERS)
            env = stack_environment(workspace, database_url(options, databases), **celery)
            return repeat_up(config, workspace, env, options=options, progress=progress, results=results)
    overrides = {} if config == "ours" else stock_overrides()
    env = stack_environment(workspace, database_url(options, databases), **overrides)
    return repeat_up(config, workspace, env, options=options, progress=progress, results=results)


def repeat_up(
    config: str,
    workspace: Path,
    env: dict[str, str],
    *,
    options: argparse.Namespace,
    progress: Progress,
    results: Results,
) -> Results:
    """Cold starts of ``python -m localflow up`` with ``env``."""

    def launch() -> Stack:
        # Fresh ports each start: the last stack's may still be held for a moment after it stopped.
        env["AIRFLOW__API__PORT"] = str(free_port())
        return start_up(workspace, env)

    airflow_env = settings.native_environment(workspace, base=env)
    return repeat(
        config, workspace, env, airflow_env, launch, options=options, progress=progress, results=results
    )


def repeat(
    config: str,
    workspace: Path,
    env: dict[str, str],
    airflow_env: dict[str, str],
    launch: Callable[[], Stack],
    *,
    options: argparse.Namespace,
    progress: Progress,
    results: Results,
) -> Results:
    """Cold starts of one configuration's stack (``launch``), measuring each; ``airflow_env`` migrates."""
    timeout, window, repetitions = options.timeout, options.idle_window, options.repetitions
    progress.show(f"{config}: migrating a fresh database ...")
    run_airflow(airflow_env, "db", "migrate")
    for repetition in range(repetitions):
        label = f"{config} {repetition + 1}/{repetitions}"
        progress.show(f"{label}: cold start ...")
        started = time.monotonic()
        stack = launch()
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
            # The quiet minute: the idle window is its end, the trigger right after it.
            progress.show(f"{label}: idle {quiet_seconds(window):.0f} s ...")
            time.sleep(quiet_seconds(window) - window)
            record_idle(config, idle_sample(stack, window), results)
            progress.show(f"{label}: idle", step=True)
            results.add(quiet_minute_metric(window), trigger_to_success(stack, timeout))
            progress.show(f"{label}: trigger after idle", step=True)
            if options.files and repetition == repetitions - 1:
                progress.show(f"{label}: {options.files} new files ...")
                many_files(
                    stack,
                    workspace,
                    options.files,
                    timeout=options.files_timeout,
                    window=window,
                    results=results,
                    drop_watcher=config == "stock",
                )
                progress.show(f"{label}: {options.files} new files", step=True)
        finally:
            stack.stop()
        if config in ("stock", "ours"):  # one process, whatever the executor; standalone's is stock's
            progress.show(f"{label}: dag.test() ...")
            results.add("dag.test() example_etl", dag_test(config, workspace, env))
        progress.show(f"{label}: dag.test()", step=True)
    return results


# --- the table ----------------------------------------------------------------------------------------

GOALS = {
    **dict.fromkeys(SAVE_SCENARIOS, "≤ 2 (median)"),
    "trigger → success (3 tasks)": "≤ 5",
    "idle PSS total (MB)": "< 500",
}
TITLES = {
    "stock": "stock Airflow",
    "ours": "localflow",
    "standalone": "airflow standalone",
    "celery": f"localflow on Celery ({CELERY_WORKERS} workers)",
}
# (numerator, denominator, heading): shown when both configurations ran.
RATIOS = (
    ("ours", "stock", "ours/stock"),
    ("ours", "standalone", "ours/standalone"),
    ("celery", "ours", "Celery/ours"),
)


@dataclass(frozen=True)
class Limits:
    """The longest waits: ``timeout`` for saves and runs, ``files`` for the many-files row."""

    timeout: float
    files: float

    def of(self, metric: str) -> float | None:
        """The wait a metric was measured up to; None for a metric that is not a wait."""
        if metric.endswith("new files → all visible"):
            return self.files
        if metric in SAVE_SCENARIOS or metric.startswith("trigger → success"):
            return self.timeout
        return None


def unit(metric: str) -> str:
    """The unit a metric is shown in."""
    return "" if "(MB)" in metric or "%" in metric else " s"


def cell(values: list[float] | None, metric: str, limits: Limits) -> str:
    """Median and range; a median at its limit shows as "> limit"."""
    if not values:
        return "n/a"
    median = statistics.median(values)
    decimals = 0 if "(MB)" in metric else 1 if "%" in metric else 2
    limit = limits.of(metric)
    if limit is not None and median >= limit:
        return f"> {limit:.0f} s"
    text = f"{median:.{decimals}f}{unit(metric)}"
    if len(values) > 1:
        text += f" ({min(values):.{decimals}f}-{max(values):.{decimals}f})"
    return text


def ratio(base: list[float] | None, other: list[float] | None, metric: str, limits: Limits) -> str:
    """Median of ``other`` over median of ``base``; "< x" when ``base`` hit its limit."""
    if not base or not other or statistics.median(base) <= 0:
        return "n/a"
    value = statistics.median(other) / statistics.median(base)
    limit = limits.of(metric)
    capped = limit is not None and statistics.median(base) >= limit
    return f"< {value:.2f}" if capped else f"{value:.2f}"


def table(results: dict[str, Results], limits: Limits, repetitions: int) -> str:
    """The markdown table: one row per metric; a column per configuration that ran, then the ratios."""
    ran = [config for config in CONFIGS if results.get(config) and results[config].samples]
    ratios = [(top, bottom, heading) for top, bottom, heading in RATIOS if top in ran and bottom in ran]
    metrics: list[str] = []
    for config in ran:
        metrics += [metric for metric in results[config].samples if metric not in metrics]
    headings = [TITLES[config] for config in ran] + [heading for _, _, heading in ratios] + ["goal"]
    lines = [
        f"| metric ({repetitions} runs: median (min-max)) | " + " | ".join(headings) + " |",
        "|---|" + "---|" * len(headings),
    ]
    for metric in metrics:
        samples = {config: results[config].samples.get(metric) for config in ran}
        cells = [cell(samples[config], metric, limits) for config in ran]
        cells += [ratio(samples[bottom], samples[top], metric, limits) for top, bottom, _ in ratios]
        cells.append(GOALS.get(metric, ""))
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def footnotes(results: dict[str, Results]) -> str:
    """What the configurations ran with, where the table alone does not say it."""
    return "\n".join(f"- {note}" for config in CONFIGS for note in results[config].notes)


def main(argv: list[str] | None = None) -> int:
    """Run the configurations and print the table."""
    parser = argparse.ArgumentParser(prog="python -m localflow bench", description=__doc__.split("\n")[0])
    parser.add_argument("--repetitions", type=int, default=3, help="cold starts per configuration")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="longest wait for a save to show or a run to succeed (s)"
    )
    parser.add_argument(
        "--idle-window", type=float, default=30.0, help="idle CPU is measured over this many seconds"
    )
    parser.add_argument(
        "--files",
        type=int,
        default=300,
        help="DAG files dropped into dags/ at once, per configuration (0: off)",
    )
    parser.add_argument(
        "--files-timeout", type=float, default=300.0, help="longest wait for all those files to show (s)"
    )
    parser.add_argument(
        "--database",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="of stock, ours and celery: a fresh PostgreSQL database, or the workspace's SQLite file "
        "(the default of a fresh clone)",
    )
    parser.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help=f"of {','.join(CONFIGS)} (default {DEFAULT_CONFIGS}); celery: ours on the CeleryExecutor",
    )
    options = parser.parse_args(argv)
    configs = [config.strip() for config in options.configs.split(",") if config.strip()]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(sorted(unknown))}")
    # cold start, the saves, the triggers, idle, the trigger after idle, dag.test()
    steps_per_repetition = 1 + len(SAVE_SCENARIOS) + 4
    progress = Progress(len(configs) * (options.repetitions * steps_per_repetition + bool(options.files)))
    root = Path(tempfile.mkdtemp(prefix="localflow-bench-"))
    databases = PostgresDatabases()
    results = {config: Results() for config in CONFIGS}
    try:
        for config in configs:
            results[config] = run_config(config, databases, options=options, root=root, progress=progress)
    finally:
        databases.drop_all()
        shutil.rmtree(root, ignore_errors=True)
        print(file=sys.stderr)
    print(
        f"\nNative stack, {psutil.cpu_count()} CPUs, `python3 -m localflow bench --configs {','.join(configs)} "
        f"--database {options.database} --repetitions {options.repetitions} --timeout {options.timeout:g} --idle-window {options.idle_window:g} "
        f"--files {options.files}`:\n"
    )
    print(table(results, Limits(options.timeout, options.files_timeout), options.repetitions))
    notes = footnotes(results)
    if notes:
        print(f"\n{notes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
