"""The dag watcher: which saves reparse which DAG files, how it watches, and that Airflow really reparses.

The last tests run the native stack with Airflow's own rescans and reparses pushed out to an hour, so
whatever shows up in the API within the test's patience was requested by the watcher.
"""

from __future__ import annotations

import os
import queue
import shutil
import time
from pathlib import Path

import pytest

from localflow.errors import LocalflowError
from localflow.polling import wait_until
from localflow.watcher import events, files, reparse
from testkit.native_stack import RunningStack, dag_source, make_workspace, stack_environment, start_up


@pytest.fixture
def folders(tmp_path: Path) -> files.Folders:
    """A dags/ and plugins/ pair: a DAG using a helper that uses another, a DAG using nothing."""
    dags, plugins = tmp_path / "dags", tmp_path / "plugins"
    (dags / "common").mkdir(parents=True)
    (plugins / "pkg").mkdir(parents=True)
    (plugins / "base_helper.py").write_text("VALUE = 1\n")
    (plugins / "pkg" / "__init__.py").write_text("")
    (plugins / "pkg" / "mid.py").write_text("from base_helper import VALUE\n")
    (plugins / "pkg" / "rel.py").write_text("from . import mid\n")
    (dags / "common" / "names.py").write_text("NAME = 'x'\n")
    (dags / "uses_mid.py").write_text(dag_source("uses_mid", '"t"', "from pkg.mid import VALUE"))
    (dags / "uses_rel.py").write_text(dag_source("uses_rel", '"t"', "import pkg.rel"))
    (dags / "uses_names.py").write_text(dag_source("uses_names", '"t"', "from common.names import NAME"))
    (dags / "alone.py").write_text(dag_source("alone", '"t"'))
    return files.Folders(dags, plugins)


# saved path (relative to the temporary root), DAG files to reparse, bundle rescan
PLANS = (
    ("dags/alone.py", {"alone.py"}, False),
    ("dags/new_file.py", {"new_file.py"}, False),
    ("plugins/base_helper.py", {"uses_mid.py", "uses_rel.py"}, False),  # through pkg.mid, pkg.rel
    ("plugins/pkg/rel.py", {"uses_rel.py"}, False),
    ("dags/common/names.py", {"common/names.py", "uses_names.py"}, False),
    ("dags/__pycache__/alone.cpython-311.pyc", set(), False),
    ("dags/.alone.py.swp", set(), False),
    ("dags/notes.md", set(), False),
    ("dags/.airflowignore", set(), True),
    ("dags/removed_folder", set(), True),
    ("plugins/.airflowignore", set(), False),
    ("elsewhere/alone.py", set(), False),
)


@pytest.mark.parametrize(("saved", "reparse", "rescan"), PLANS)
def test_plan(folders: files.Folders, saved: str, reparse: set[str], rescan: bool):
    """A save reparses the file itself and every DAG importing it; folder changes rescan the bundle."""
    work = files.plan([folders.dags.parent / saved], folders)
    assert (work.reparse, work.rescan) == (reparse, rescan)


# source, package of the file, modules it imports
IMPORTS = (
    ("import a.b", "", {"a.b"}),
    ("from a import b, c", "", {"a", "a.b", "a.c"}),
    ("from . import mid", "pkg", {"pkg", "pkg.mid"}),
    ("from ..x import y", "pkg.sub", {"pkg.x", "pkg.x.y"}),
    ("def f():\n    import late", "", {"late"}),
    ("this is not python", "", set()),
)


@pytest.mark.parametrize(("source", "package", "expected"), IMPORTS)
def test_imported_modules(tmp_path: Path, source: str, package: str, expected: set[str]):
    """Imports are read without running the file, relative ones resolved, a broken file has none."""
    path = tmp_path / "module.py"
    path.write_text(source)
    assert files.imported_modules(path, package) == expected


def save_in_the_same_second(path: Path, text: str) -> None:
    """Save ``text`` again within the second of the last save (its modification time 1 µs apart)."""
    last = path.stat().st_mtime_ns
    path.write_text(text)
    same_second = last + 1_000 if (last + 1_000) // 10**9 == last // 10**9 else last - 1_000
    os.utime(path, ns=(same_second, same_second))


def rename(folders: files.Folders, old: str, new: str) -> None:
    """Move ``old`` to ``new`` (relative to the root of both folders)."""
    (folders.dags.parent / old).rename(folders.dags.parent / new)


# what is done, paths (relative to the temporary root) the next bursts must hand on
CHANGES_SEEN = (
    ("edit", lambda f: (f.dags / "alone.py").write_text("A = 1\n"), {"dags/alone.py"}),
    # Polling must compare exact times: watchfiles' polling (whole seconds) would miss this save.
    ("edit again", lambda f: save_in_the_same_second(f.dags / "alone.py", "A = 2\n"), {"dags/alone.py"}),
    ("new folder", lambda f: (f.dags / "team").mkdir(), {"dags/team"}),
    ("new file in it", lambda f: (f.dags / "team" / "new.py").write_text(""), {"dags/team/new.py"}),
    ("ignore file", lambda f: (f.dags / ".airflowignore").write_text("team\n"), {"dags/.airflowignore"}),
    ("file moved", lambda f: rename(f, "dags/alone.py", "dags/moved.py"), {"dags/alone.py", "dags/moved.py"}),
    ("folder moved", lambda f: rename(f, "dags/team", "dags/crew"), {"dags/team", "dags/crew"}),
    ("folder deleted", lambda f: shutil.rmtree(f.dags / "crew"), {"dags/crew"}),
    ("file deleted", lambda f: (f.dags / "moved.py").unlink(), {"dags/moved.py"}),
    (
        "helper edit",
        lambda f: (f.plugins / "base_helper.py").write_text("VALUE = 2\n"),
        {"plugins/base_helper.py"},
    ),
)


def handed_on(changes: queue.Queue, expected: set[str], root: Path, what: str) -> None:
    """Wait until the loop's bursts held every path of ``expected`` (relative to ``root``); then the rest."""
    seen: set[str] = set()

    def all_seen() -> bool:
        seen.update(path.relative_to(root).as_posix() for path in events.collect(changes, 0.2))
        return expected <= seen

    wait_until(all_seen, 5, interval=0, what=lambda: f"{what} (seen: {sorted(seen)})")
    while events.collect(changes, 0.3):  # the rest of the burst
        pass


@pytest.mark.parametrize("mode", ["events", "poll"])
def test_every_kind_of_change_is_handed_on(folders: files.Folders, mode: str):
    """Saves, creations, moves and deletions of files and folders reach the loop; the observer stops at once."""
    changes: queue.Queue = queue.Queue()
    observer = events.start_observer(mode, folders, changes, poll_interval=0.1)
    try:
        time.sleep(0.3)  # polling: the first look at the folders
        for what, change, expected in CHANGES_SEEN:
            change(folders)
            handed_on(changes, expected, folders.dags.parent, f"{mode}: {what}")
    finally:
        started = time.monotonic()
        observer.stop()
        observer.join(timeout=5)
    assert not observer.is_alive() and time.monotonic() - started < 2


# /proc/self/mounts line for the workspace, LOCALFLOW_WATCH, expected mode
MODES = (
    ("/dev/sda1 /workspaces ext4 rw 0 0", "auto", "events"),
    ("overlay / overlay rw 0 0", "auto", "events"),
    ("virtiofs0 /workspaces virtiofs rw 0 0", "auto", "poll"),  # Docker Desktop, macOS
    ("grpcfuse /workspaces fakeowner rw 0 0", "auto", "poll"),
    ("drvfs /workspaces 9p rw 0 0", "auto", "poll"),  # WSL 2 / Windows
    ("virtiofs0 /workspaces virtiofs rw 0 0", "events", "events"),
    ("/dev/sda1 /workspaces ext4 rw 0 0", "poll", "poll"),
    ("/dev/sda1 /workspaces ext4 rw 0 0", "off", "off"),
)


@pytest.mark.parametrize(("mount", "setting", "mode"), MODES)
def test_choose_mode(tmp_path: Path, mount: str, setting: str, mode: str):
    """Polling where a host's bind mount may drop events; the setting always wins."""
    mounts = tmp_path / "mounts"
    mounts.write_text(f"proc /proc proc rw 0 0\n{mount}\n")
    folder = Path("/workspaces/localflow/dags")
    chosen, reason = events.choose_mode({"LOCALFLOW_WATCH": setting}, folder, mounts)
    assert chosen == mode, reason


def test_unknown_mode_is_one_clear_error():
    """A mistyped LOCALFLOW_WATCH stops the watcher with the accepted values."""
    with pytest.raises(LocalflowError, match="auto, events, poll, off"):
        events.choose_mode({"LOCALFLOW_WATCH": "inotify"}, Path("/"))


# environment, api-server address the watcher uses
API_URLS = (
    (
        {"AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://airflow-api-server:8080/execution/"},
        "http://airflow-api-server:8080",
    ),
    (
        {"AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://127.0.0.1:9999/execution/"},
        "http://127.0.0.1:9999",
    ),
    ({"AIRFLOW__API__HOST": "0.0.0.0", "AIRFLOW__API__PORT": "8081"}, "http://127.0.0.1:8081"),
)


@pytest.mark.parametrize(("env", "url"), API_URLS)
def test_api_base_url(env: dict[str, str], url: str):
    """The watcher reaches the api-server where tasks do (compose: by service name)."""
    assert reparse.api_base_url(env) == url


# --- against the real stack ---------------------------------------------------------------------------

PATIENCE = 90  # seconds; Airflow itself would not look again for an hour


def wait_for(condition, what: str, stack: RunningStack) -> None:
    """Wait until ``condition()`` holds; fail with the watcher's log otherwise."""
    log = stack.workspace / ".airflow" / "logs" / "components" / "dag-watcher.log"
    wait_until(condition, PATIENCE, what=lambda: f"dag-watcher log:\n{log.read_text()}\n{what} visible")


def slow_version(workspace: Path, marker: int) -> str:
    """DAG ``renamed`` with task ``m{marker}``, whose parse takes a second and logs when it runs."""
    parses = workspace / "renamed-parses.log"  # outside dags/: writing it is not a save
    imports = (
        f"import time\nwith open({str(parses)!r}, 'a') as log:\n    log.write('start m{marker}\\n')\n"
        f"time.sleep(1)\nwith open({str(parses)!r}, 'a') as log:\n    log.write('end m{marker}\\n')\n"
    )
    return dag_source("renamed", f'"m{marker}"', imports)


@pytest.fixture(scope="module")
def slow_airflow_stack(tmp_path_factory, postgres):
    """A native stack whose dag-processor would not rescan or reparse by itself for an hour."""
    root = tmp_path_factory.mktemp("watched")
    workspace = make_workspace(root)
    (workspace / "plugins" / "watched_helper.py").write_text('TASK_ID = "h0"\n')
    (workspace / "dags" / "uses_helper.py").write_text(
        dag_source("uses_helper", "watched_helper.TASK_ID", "import watched_helper")
    )
    (workspace / "dags" / "edited.py").write_text(dag_source("edited", '"v0"'))
    (workspace / "dags" / "renamed.py").write_text(slow_version(workspace, 0))
    env = stack_environment(
        workspace,
        postgres.create(),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="3600",
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="3600",
    )
    stack = start_up(workspace, env)
    try:
        stack.wait_healthy()
        with stack.output_on_timeout():
            stack.api.wait_for_dags(["uses_helper", "edited", "renamed"])
        yield stack
    finally:
        stack.stop()


def import_error_files(stack: RunningStack) -> set[str]:
    """File names with a recorded import error."""
    return {Path(filename).name for filename in stack.api.import_errors()}


@pytest.mark.stack
def test_saves_are_reparsed_through_the_watcher(slow_airflow_stack):
    """New, edited, broken, fixed and deleted DAG files and an edited helper all reach the API."""
    stack = slow_airflow_stack
    dags, plugins = stack.workspace / "dags", stack.workspace / "plugins"

    (dags / "brand_new.py").write_text(dag_source("brand_new", '"t"'))
    wait_for(lambda: stack.api.request("GET", "/api/v2/dags/brand_new")[0] == 200, "new file", stack)

    (dags / "edited.py").write_text(dag_source("edited", '"v1"'))
    wait_for(lambda: stack.api.task_ids("edited") == {"v1"}, "edit", stack)

    (plugins / "watched_helper.py").write_text('TASK_ID = "h1"\n')
    wait_for(lambda: stack.api.task_ids("uses_helper") == {"h1"}, "helper edit", stack)

    (dags / "edited.py").write_text(dag_source("edited", '"v2"') + "\nthis is not python\n")
    wait_for(lambda: "edited.py" in import_error_files(stack), "import error", stack)
    (dags / "edited.py").write_text(dag_source("edited", '"v3"'))
    wait_for(
        lambda: "edited.py" not in import_error_files(stack) and stack.api.task_ids("edited") == {"v3"},
        "fixed import error",
        stack,
    )

    (dags / "brand_new.py").unlink()
    wait_for(
        lambda: stack.api.request("GET", "/api/v2/dags/brand_new")[1].get("is_stale") is True,
        "deletion",
        stack,
    )
    log = (stack.workspace / ".airflow" / "logs" / "components" / "dag-watcher.log").read_text()
    assert "with file events" in log and "uses_helper.py: reparse requested" in log


@pytest.mark.stack
def test_new_file_in_a_new_folder_is_found(slow_airflow_stack):
    """A DAG saved in a folder created after the start is found too (the folder is watched recursively)."""
    stack = slow_airflow_stack
    folder = stack.workspace / "dags" / "team"
    folder.mkdir()
    (folder / "nested.py").write_text(dag_source("nested", '"t"'))
    wait_for(lambda: stack.api.request("GET", "/api/v2/dags/nested")[0] == 200, "nested file", stack)


def save_by_rename(path: Path, text: str) -> None:
    """Save as many editors do: write a temporary file beside ``path``, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def dag_source_content(stack: RunningStack, dag_id: str) -> str:
    """The source the UI's Code tab shows (``GET /api/v2/dagSources/{dag_id}``)."""
    status, body = stack.api.request("GET", f"/api/v2/dagSources/{dag_id}")
    return body.get("content", "") if status == 200 else ""


SAVES = 12


@pytest.mark.stack
def test_last_of_quick_saves_by_rename_is_parsed(slow_airflow_stack):
    """Saves by rename 0.4 s apart while the file parses (1 s each): the API ends with the last version.

    The last save lands during a parse, when Airflow drops its reparse request (``watcher/reparse.py``):
    without the watcher's second request it would show only at the periodic reparse, an hour away here.
    """
    stack = slow_airflow_stack
    path, parses = stack.workspace / "dags" / "renamed.py", stack.workspace / "renamed-parses.log"
    for marker in range(1, SAVES):
        save_by_rename(path, slow_version(stack.workspace, marker))
        time.sleep(0.4)
    # The last save while a parse is in its sleep, as in the series that showed the race.
    wait_until(lambda: parses.read_text().splitlines()[-1].startswith("start"), 10, interval=0.02)
    save_by_rename(path, slow_version(stack.workspace, SAVES))
    last = f"m{SAVES}"
    log = stack.workspace / ".airflow" / "logs" / "components" / "dag-watcher.log"
    wait_until(
        lambda: (
            stack.api.task_ids("renamed") == {last} and f'"{last}"' in dag_source_content(stack, "renamed")
        ),
        25,
        what=lambda: f"dag-watcher log:\n{log.read_text()}\nparses:\n{parses.read_text()}\ntask {last}",
    )
