"""``python -m localflow upgrade-check X.Y.Z``: what another Airflow release would change for your DAGs.

The candidate gets a venv of its own beside the workspace (``bootstrap.release_venv``: its locks, your
packages re-resolved against them); both releases are measured alike, stock, each in a throwaway home on
SQLite (``upgrade_probe``: parse, ``dag.test()``), and with ruff's AIR rules. One table, and exit 1 when
something got worse (docs/releases.md, "Rehearsing an upgrade"). Nothing of ``.airflow/`` or ``.env``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from localflow import bootstrap, checks, packages, releases, upgrade_probe
from localflow.config import settings, settings_yaml
from localflow.errors import LocalflowError

# Besides Airflow's own packages and yours: what a DAG meets directly, or what breaks most when it moves.
KEY_PACKAGES = frozenset(
    {"sqlalchemy", "alembic", "pydantic", "fastapi", "pendulum", "structlog", "httpx", "uvicorn", "flask"}
)
PROBE_SOURCE = Path(upgrade_probe.__file__).read_text()
FINDING = re.compile(r"^\S+?:\d+:\d+: ")  # ruff's concise output: dags/x.py:3:1: AIR301 ...
OTHERS_SHOWN = 8  # names of the other changed packages in the table's last row


@dataclass
class Side:
    """One release as measured: its venv, its locks, what each DAG file and DAG did, ruff's findings."""

    release: str
    python: Path
    locks: tuple[Path, ...]
    files: dict[str, dict] = field(default_factory=dict)  # dags/x.py -> {"error", "dags", "deprecations"}
    outcomes: dict[str, str] = field(default_factory=dict)  # "dags/x.py DAG_ID" -> outcome
    ruff: set[str] = field(default_factory=set)
    failure: str = ""  # what kept it from being measured at all


def candidate_release(text: str) -> str:
    """The candidate named on the command line, or one line saying why it cannot be one."""
    try:
        release = releases.chosen({releases.SETTING: text})
    except releases.ReleaseError as error:
        raise LocalflowError(str(error).replace(f"{releases.SETTING}=", "upgrade-check ")) from None
    if refusal := releases.python_refusal(release, sys.version_info[:2]):
        raise LocalflowError(refusal)
    return release


def probe_environment(workspace: Path, home: Path, secrets: Mapping[str, str]) -> dict[str, str]:
    """Stock Airflow in a throwaway home: the DAGs folder, no plugins loaded (plugins/ importable), throwaway
    secrets, and airflow_settings.yaml's connections and variables as AIRFLOW_CONN_/AIRFLOW_VAR_ variables,
    which every release reads."""
    settings_file = workspace / settings.SETTINGS_FILE_NAME
    if not settings_file.exists():
        settings_file = workspace / settings.SETTINGS_EXAMPLE_NAME
    stored = settings_yaml.read(settings_file) if settings_file.exists() else settings_yaml.Settings()
    (home / "plugins").mkdir(parents=True, exist_ok=True)
    return {
        **settings.without_owned(os.environ),
        **{f"AIRFLOW_CONN_{conn_id.upper()}": value for conn_id, value in stored.connections.items()},
        **{f"AIRFLOW_VAR_{key.upper()}": value for key, value in stored.variables.items()},
        **settings.home_settings(home),
        **secrets,
        "AIRFLOW_CONFIG": str(home / "airflow.cfg"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(workspace / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join([str(workspace / "dags"), str(workspace / "plugins")]),
    }


def _probe(side: Side, args: list[str], env: dict[str, str], home: Path, timeout: float) -> dict:
    """The probe's answer in ``side``'s venv (``-c``: no folder of localflow on its sys.path)."""
    try:
        result = subprocess.run(
            [str(side.python), "-c", PROBE_SOURCE, *args],
            cwd=home, env=env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise LocalflowError(
            f"the probe in Airflow {side.release}'s venv took over {timeout:.0f} s"
        ) from None
    for line in result.stdout.splitlines():
        if line.startswith(upgrade_probe.MARKER + " "):
            return json.loads(line.split(" ", 1)[1])
    tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [f"exit {result.returncode}"]
    raise LocalflowError(f"the probe failed in Airflow {side.release}'s venv: {tail[0]}")


def ruff_findings(python: Path, workspace: Path) -> set[str]:
    """``ruff check --select AIR dags/`` with the ruff of ``python``'s venv: one line per finding."""
    result = subprocess.run(
        [str(python), "-m", "ruff", "check", "--select", "AIR", "--output-format=concise", "--no-cache", "dags"],
        cwd=workspace, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return {line for line in result.stdout.splitlines() if FINDING.match(line)}


def measure(side: Side, workspace: Path, files: list[Path], timeout: int, secrets: Mapping[str, str]) -> None:
    """Parse, migrate a throwaway SQLite database (at once, in parallel) and ``dag.test()`` every DAG."""
    try:
        with tempfile.TemporaryDirectory(prefix=f"localflow-upgrade-{side.release}-") as folder:
            home = Path(folder)
            env = probe_environment(workspace, home, secrets)
            migrate = subprocess.Popen(
                [str(side.python), "-m", "airflow", "db", "migrate"],
                cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            parsed = _probe(side, ["parse", *map(str, files)], env, home, 600) if files else {}
            side.files = {f"dags/{Path(path).name}": found for path, found in parsed.items()}
            _, errors = migrate.communicate(timeout=600)
            if migrate.returncode != 0:
                raise LocalflowError(
                    f"`airflow db migrate` failed: {(errors.strip().splitlines() or ['?'])[-1]}"
                )
            pairs = [
                word for path, found in parsed.items() for dag_id in found["dags"] for word in (path, dag_id)
            ]
            if pairs:
                answer = _probe(
                    side, ["test", str(timeout), *pairs], env, home, timeout * len(pairs) / 2 + 300
                )
                side.outcomes = {f"dags/{Path(path).name}": outcome for path, outcome in answer.items()}
            side.ruff = ruff_findings(side.python, workspace)
    except (LocalflowError, subprocess.SubprocessError, OSError) as error:
        side.failure = str(error)


def side_locks(release: str) -> tuple[Path, ...]:
    """The workspace's locks of ``release`` (absolute), the runtime and dev ones (ruff is in the latter)."""
    return tuple(bootstrap.WORKSPACE / releases.lock_path(release, name) for name in bootstrap.LOCK_FILES)


def resolve_yours(release: str, output: Path) -> str:
    """Your packages locked against ``release``'s locks into ``output``, starting from your lock (uv keeps
    every pin it can); "" when done, else the conflict in a line or two."""
    user_lock = settings.WORKSPACE / bootstrap.USER_LOCK
    if user_lock.exists():
        output.write_bytes(user_lock.read_bytes())
    command = bootstrap.compile_command(bootstrap.USER_LOCK, output, release)
    command[command.index(bootstrap.USER_INPUT)] = str(settings.WORKSPACE / bootstrap.USER_INPUT)
    result = subprocess.run(command, cwd=bootstrap.WORKSPACE, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return ""
    return packages.conflict(result.stderr + result.stdout, f"your packages on Airflow {release}")


def pins(locks: tuple[Path, ...]) -> dict[str, str]:
    """Name -> version(s) of every package the locks pin ("2.2.6/2.3.1": one per Python marker)."""
    found: dict[str, set[str]] = {}
    for lock in locks:
        for name, versions in packages.locked(lock).items():
            found.setdefault(name, set()).update(versions)
    return {name: "/".join(sorted(versions)) for name, versions in found.items()}


def dag_rows(current: Side, candidate: Side) -> list[tuple[str, str, str, list[str], bool]]:
    """(DAG, current, candidate, changes, worse) per DAG of every file, a file's deprecations on its first."""
    rows = []
    for name in sorted(set(current.files) | set(candidate.files)):
        before, after = current.files.get(name, {}), candidate.files.get(name, {})
        ids = sorted(set(before.get("dags", ())) | set(after.get("dags", ()))) or [""]
        for index, dag_id in enumerate(ids):
            key = f"{name} {dag_id}"
            cells = [_cell(found, side.outcomes.get(key), dag_id) for found, side in ((before, current),
                                                                                       (after, candidate))]  # fmt: skip
            changes, worse = [], False
            if after.get("error") and not before.get("error"):
                changes.append(f"new import error: {after['error']}")
                worse = True
            elif before.get("error") and not after.get("error"):
                changes.append("import error gone")
            elif before.get("error") and after.get("error") != before.get("error"):
                changes.append(f"other import error: {after['error']}")
            elif (
                not after.get("error")
                and dag_id in before.get("dags", ())
                and dag_id not in after.get("dags", ())
            ):
                changes.append("DAG gone from the file")
                worse = True
            elif (was := current.outcomes.get(key)) != (now := candidate.outcomes.get(key)) and was and now:
                changes.append(f"run: {was} -> {now}")
                worse = worse or was == "success"
            if index == 0 and not after.get("error"):
                changes += [f"new deprecation: {text}" for text in after.get("deprecations", ())
                            if text not in before.get("deprecations", ())]  # fmt: skip
                if not before.get("error"):
                    changes += [f"deprecation gone: {text}" for text in before.get("deprecations", ())
                                if text not in after.get("deprecations", ())]  # fmt: skip
            rows.append((f"{name} {dag_id}".strip(), *cells, changes or ["same"], worse))
    return rows


def _cell(found: dict, outcome: str | None, dag_id: str) -> str:
    if not found:
        return "-"
    if found.get("error"):
        return "import error"
    if dag_id not in found.get("dags", ()):
        return "no such DAG"
    word = (outcome or "not run").split(" (", 1)[0].split(":", 1)[0]
    return f"{word}, {len(found['deprecations'])} depr." if found.get("deprecations") else word


def package_rows(
    current: Side, candidate: Side, yours: set[str]
) -> list[tuple[str, str, str, list[str], bool]]:
    """The packages whose pin changes: Airflow's, yours, the key ones each on a row; the others on one."""
    before, after = pins(current.locks), pins(candidate.locks)
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    shown = [name for name in changed if name.startswith("apache-airflow") or name in KEY_PACKAGES | yours]
    rows = [(name, before.get(name, "-"), after.get(name, "-"), ["changes"], False) for name in shown]
    others = [name for name in changed if name not in shown]
    if others:
        names = ", ".join(others[:OTHERS_SHOWN]) + (", ..." if len(others) > OTHERS_SHOWN else "")
        rows.append((f"{len(others)} other packages", "", "", [f"change: {names}"], False))
    return rows


def ruff_row(current: Side, candidate: Side) -> tuple[str, str, str, list[str], bool]:
    """ruff's AIR findings on both sides (the rules read no Airflow: they differ only with ruff's pin)."""
    new, gone = sorted(candidate.ruff - current.ruff), sorted(current.ruff - candidate.ruff)
    changes = [f"new: {line}" for line in new] + [f"gone: {line}" for line in gone]
    return ("ruff --select AIR", f"{len(current.ruff)} findings", f"{len(candidate.ruff)} findings",
            changes or ["same"], bool(new))  # fmt: skip


def table(rows: list[tuple[str, str, str, list[str], bool]], current: str, candidate: str) -> str:
    """Aligned columns; a row's further changes on lines of their own, under the first."""
    header = ("DAG / package", current, candidate, "what changed")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(3)]
    lines = []
    for label, before, after, changes, _worse in [(*header[:3], [header[3]], False), *rows]:
        cells = (label.ljust(widths[0]), before.ljust(widths[1]), after.ljust(widths[2]))
        lines.append("  ".join([*cells, changes[0]]).rstrip())
        lines += ["  ".join([" " * width for width in widths] + [change]) for change in changes[1:]]
    return "\n".join(lines)


def build_candidate(release: str, folder: Path) -> tuple[Side, str]:
    """The candidate's venv: its locks, plus yours re-resolved against them (or the conflict, without)."""
    bootstrap.ensure_release_locks(
        release, fix="`pip index versions apache-airflow` lists them."
    )  # another 3.x patch: compiled once into locks/airflow-X.Y.Z/
    locks, conflict = side_locks(release), ""
    if packages.your_packages():
        user_lock = folder / bootstrap.USER_LOCK
        conflict = resolve_yours(release, user_lock)
        if not conflict:
            locks += (user_lock,)
    name = "-yours" if len(locks) > len(bootstrap.LOCK_FILES) else ""
    return Side(release, bootstrap.release_venv(release, locks, name), locks), conflict


def current_side(release: str) -> Side:
    """The current release: .venv when it holds it (the command synced it), else a venv of its own."""
    locks = side_locks(release)
    user_lock = settings.WORKSPACE / bootstrap.USER_LOCK
    if packages.your_packages() and user_lock.exists():
        locks += (user_lock,)
    if bootstrap.installed_airflow() == release:
        return Side(release, Path(sys.executable), locks)
    name = "-yours" if len(locks) > len(bootstrap.LOCK_FILES) else ""
    return Side(release, bootstrap.release_venv(release, locks, name), locks)


def main(candidate_text: str, env: dict[str, str], timeout: int, secrets: Mapping[str, str]) -> int:
    """Measure both releases (``secrets``: throwaway ones), print the table; 1 when something got worse."""
    try:
        current = releases.chosen(env)
    except releases.ReleaseError as error:
        raise LocalflowError(f"{error}.") from None
    candidate = candidate_release(candidate_text)
    if candidate == current:
        raise LocalflowError(
            f"Airflow {current} is the current release ({releases.SETTING} in .env): name another one to "
            f"compare with, e.g. `upgrade-check {next(r for r in reversed(releases.SUPPORTED) if r != current)}`."
        )
    if releases.untested(candidate):
        print(
            releases.untested_notice(candidate).replace("localflow:", "localflow: upgrade-check:"), flush=True
        )
    workspace = settings.WORKSPACE
    files = checks.dag_files(workspace)
    print(
        f"localflow: upgrade-check: Airflow {current} (current) against {candidate}: {len(files)} DAG files, "
        f"each DAG run with dag.test() (within {timeout} s) in a throwaway home on SQLite, ruff's AIR rules",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="localflow-upgrade-") as folder:
        now = current_side(current)
        measuring = threading.Thread(target=measure, args=(now, workspace, files, timeout, secrets))
        measuring.start()  # the current release is measured while the candidate's venv is made
        try:
            then, conflict = build_candidate(candidate, Path(folder))
            measure(then, workspace, files, timeout, secrets)
        finally:
            measuring.join()
        rows = [*dag_rows(now, then), ruff_row(now, then)]
        yours = set(packages.your_packages())
        if conflict:
            rows.append(("your packages", "locked", "conflict", conflict.splitlines(), True))
        rows += package_rows(now, then, yours)
    for side in (now, then):
        if side.failure:
            rows.insert(
                0, (f"Airflow {side.release}", "", "", [f"could not be measured: {side.failure}"], True)
            )
    print(table(rows, current, candidate), flush=True)
    worse = [row[0] for row in rows if row[4]]
    if worse:
        print(f"localflow: upgrade-check: worse on {candidate}: {', '.join(worse)} (exit 1).", flush=True)
        return 1
    print(f"localflow: upgrade-check: nothing got worse on {candidate}.", flush=True)
    return 0
