"""The dag watcher: a saved DAG file is reparsed at once, through Airflow's own reparse request.

Airflow finds a new DAG file only when the dag-processor rescans its bundle (``[dag_processor]
refresh_interval``, 300 s by default) and reparses a known one on its own schedule. The watcher listens
for saves under ``dags/`` and ``plugins/`` and asks the api-server to reparse exactly the saved file:
``PUT /api/v2/parseDagFile/{file_token}``. The dag-processor puts that file at the front of its queue
and rescans the bundle at once, so the same request also makes new and deleted files visible.

Airflow hands out file tokens (``GET /api/v2/dags``) only for files that hold, or held, a DAG. For any
other file (a new one, or one broken since its first save) the watcher requests the reparse of another
file of the bundle: the rescan that comes with it finds the new file and parses it first.

A save of a helper module (under ``plugins/``, or a non-DAG module under ``dags/``) reparses the DAG files
that import it, directly or through other helpers. Each parse runs in a fresh process, so they see the
new code (Airflow itself would only notice at the next periodic reparse: apache/airflow #57621, #39975).

File events: inotify, FSEvents or ReadDirectoryChangesW natively. A container whose workspace is a bind
mount from macOS or Windows (virtiofs, grpcfuse, 9p ...) may never see an event, so there the watcher
polls the files instead. ``LOCALFLOW_WATCH=auto|events|poll|off`` (default ``auto``) decides;
``LOCALFLOW_WATCH_POLL_INTERVAL`` is the polling period in seconds (default 0.5). With ``off`` the watcher
only waits to be stopped (the benchmark's stock run uses it).
"""

from __future__ import annotations

import ast
import os
import queue
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from localflow import rest, secrets, settings
from localflow.errors import LocalflowError
from localflow.stopping import StopRequest

MODE_VARIABLE = "LOCALFLOW_WATCH"
POLL_INTERVAL_VARIABLE = "LOCALFLOW_WATCH_POLL_INTERVAL"
DEFAULT_POLL_INTERVAL = 0.5
MODES = ("auto", "events", "poll", "off")
# Filesystems of bind mounts from a macOS or Windows host, which do not reliably carry file events.
NO_EVENT_FILESYSTEMS = frozenset(
    {"fakeowner", "virtiofs", "grpcfuse", "fuse.grpcfuse", "osxfs", "9p", "drvfs", "vboxsf", "cifs", "smb3"}
)
BUNDLE_NAME = "dags-folder"  # Airflow's default bundle: [core] dags_folder
QUIET_PERIOD = 0.05  # an editor's save is a burst of events; handle it once
HEARTBEAT_FILE = Path(tempfile.gettempdir()) / "localflow-dag-watcher.alive"
HEARTBEAT_MAX_AGE = 60.0
IGNORED_DIRECTORIES = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".mypy_cache", ".ruff_cache"})


def log(message: str) -> None:
    """One line to the component's log."""
    print(f"dag-watcher: {message}", flush=True)


# --- which files matter -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Folders:
    """The watched folders: DAG files under ``dags``, helper modules under ``dags`` and ``plugins``."""

    dags: Path
    plugins: Path

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> Folders:
        """The folders Airflow itself uses (``[core] dags_folder``, ``[core] plugins_folder``)."""
        return cls(
            Path(env.get("AIRFLOW__CORE__DAGS_FOLDER", settings.WORKSPACE / "dags")).resolve(),
            Path(env.get("AIRFLOW__CORE__PLUGINS_FOLDER", settings.WORKSPACE / "plugins")).resolve(),
        )

    def roots(self) -> tuple[Path, ...]:
        """Both folders, each on ``sys.path`` of a parse (helpers import from either)."""
        return (self.dags, self.plugins)


def _relative_parts(path: Path, folders: Folders) -> tuple[str, ...] | None:
    """``path``'s parts inside a watched folder; None outside them, in caches or hidden folders."""
    for root in folders.roots():
        if path.is_relative_to(root):
            parts = path.relative_to(root).parts
            hidden = any(part.startswith(".") for part in parts[:-1]) or (
                parts and parts[-1].startswith(".") and parts[-1] != ".airflowignore"
            )
            return None if hidden or any(part in IGNORED_DIRECTORIES for part in parts) else parts
    return None


def is_relevant(path: Path, folders: Folders) -> bool:
    """A Python file, a zipped DAG or an .airflowignore in a watched folder; not caches or temp files."""
    if _relative_parts(path, folders) is None:
        return False
    return (
        path.name == ".airflowignore"
        or path.suffix == ".py"
        or (path.suffix == ".zip" and path.is_relative_to(folders.dags))
    )


def module_name(path: Path, folders: Folders) -> str | None:
    """The name a DAG imports ``path`` by (``plugins/pkg/mod.py`` is ``pkg.mod``), or None."""
    if path.suffix != ".py":
        return None
    for root in folders.roots():
        if path.is_relative_to(root):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join(parts) or None
    return None


def imported_modules(path: Path, package: str = "") -> set[str]:
    """Every module name ``path`` imports (``from a import b`` counts as ``a`` and ``a.b``).

    ``package`` is the package ``path`` belongs to, for relative imports.
    """
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".") if package else []
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(part for part in (*anchor, base) if part)
            if base:
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def package_of(path: Path, module: str) -> str:
    """The package relative imports in ``path`` start from."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _related(imported: str, module: str) -> bool:
    """Importing ``imported`` runs code of ``module`` (the same, a package of it, or inside it)."""
    return imported == module or imported.startswith(module + ".") or module.startswith(imported + ".")


def python_files(folder: Path) -> Iterable[Path]:
    """The Python files under ``folder``, caches and hidden folders skipped."""
    for directory, subdirectories, files in os.walk(folder):
        subdirectories[:] = [
            d for d in subdirectories if d not in IGNORED_DIRECTORIES and not d.startswith(".")
        ]
        for name in files:
            if name.endswith(".py"):
                yield Path(directory, name)


def dependent_dag_files(changed_modules: set[str], folders: Folders) -> set[Path]:
    """DAG files under ``dags/`` that import a changed module, directly or through other helpers."""
    modules = {
        path: (name, imported_modules(path, package_of(path, name)))
        for root in folders.roots()
        for path in python_files(root)
        if (name := module_name(path, folders))
    }
    affected = set(changed_modules)
    while True:
        more = {
            name
            for name, imports in modules.values()
            if name not in affected and any(_related(i, m) for i in imports for m in affected)
        }
        if not more:
            break
        affected |= more
    return {
        path
        for path, (name, imports) in modules.items()
        if path.is_relative_to(folders.dags) and any(_related(i, m) for i in imports for m in affected)
    }


@dataclass
class Plan:
    """What a batch of saved paths asks of Airflow."""

    reparse: set[str] = field(default_factory=set)  # paths relative to the dags folder
    rescan: bool = False  # something changed that only a bundle rescan sees (.airflowignore, folders)


def plan(paths: Iterable[Path], folders: Folders) -> Plan:
    """Which DAG files to reparse for these saved (created, edited, moved or deleted) paths."""
    result = Plan()
    changed_modules: set[str] = set()
    for path in paths:
        if not _relative_parts(path, folders):
            continue
        # .airflowignore, or a folder created, moved or deleted: only a rescan sees what changed.
        if path.name == ".airflowignore" or (not path.suffix and not path.is_file()):
            result.rescan = result.rescan or path.is_relative_to(folders.dags)
            continue
        if not is_relevant(path, folders):
            continue
        if path.is_relative_to(folders.dags):
            result.reparse.add(path.relative_to(folders.dags).as_posix())
        if name := module_name(path, folders):
            changed_modules.add(name)
    if changed_modules:
        result.reparse |= {
            path.relative_to(folders.dags).as_posix()
            for path in dependent_dag_files(changed_modules, folders)
        }
    return result


# --- talking to Airflow -------------------------------------------------------------------------------


def api_base_url(env: Mapping[str, str]) -> str:
    """The api-server's address: where tasks reach it (``[core] execution_api_server_url``) knows it."""
    if url := env.get("LOCALFLOW_API_URL"):
        return url.rstrip("/")
    execution = env.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "")
    if execution.rstrip("/").endswith("/execution"):
        return execution.rstrip("/").removesuffix("/execution")
    return settings.api_url(env)


class ApiError(Exception):
    """The api-server did not answer, or refused."""


class AirflowApi:
    """The few REST calls the watcher makes, logged in as the workspace's admin."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self._credentials = {"username": username, "password": password}
        self._timeout = timeout
        self._token: str | None = None

    def _send(
        self, method: str, path: str, payload: dict | None, token: str | None, timeout: float | None = None
    ) -> tuple[int, dict]:
        try:
            return rest.request_json(self.base_url + path, method, payload, token, timeout or self._timeout)
        except OSError as error:
            raise ApiError(f"{method} {path}: {error}") from None

    def login(self) -> None:
        """Get an access token (``POST /auth/token``)."""
        status, body = self._send("POST", "/auth/token", self._credentials, token=None)
        if status != 201:
            raise ApiError(f"login as {self._credentials['username']!r} refused ({status}: {body})")
        self._token = body["access_token"]

    def call(self, method: str, path: str, payload: dict | None = None) -> tuple[int, dict]:
        """One authenticated call; logs in again once when the token has expired."""
        if self._token is None:
            self.login()
        status, body = self._send(method, path, payload, self._token)
        if status == 401:
            self.login()
            status, body = self._send(method, path, payload, self._token)
        return status, body

    def file_tokens(self, bundle: str = BUNDLE_NAME) -> dict[str, str]:
        """``relative_fileloc`` → ``file_token`` of every file of ``bundle`` that holds or held a DAG."""
        tokens: dict[str, str] = {}
        offset, limit = 0, 100
        while True:
            query = urllib.parse.urlencode(
                {"exclude_stale": "false", "limit": limit, "offset": offset, "bundle_name": bundle}
            )
            status, body = self.call("GET", f"/api/v2/dags?{query}")
            if status != 200:
                raise ApiError(f"GET /api/v2/dags: {status} {body}")
            for dag in body.get("dags", []):
                if dag.get("bundle_name") == bundle and dag.get("relative_fileloc"):
                    tokens.setdefault(dag["relative_fileloc"], dag["file_token"])
            offset += limit
            if offset >= body.get("total_entries", 0):
                return tokens

    def warm_up(self) -> None:
        """Answer the execution API's first request now, not during the first task (``rest``)."""
        started = time.monotonic()
        try:
            status = rest.warm_up_execution_api(self.base_url)
        except OSError as error:
            log(f"execution API warm-up failed: {error}")
        else:
            log(f"execution API warmed up ({status}) in {time.monotonic() - started:.1f} s")

    def reparse(self, file_token: str) -> int:
        """``PUT /api/v2/parseDagFile/{file_token}``; 201 (queued), 409 (already queued) or 404."""
        return self.call("PUT", f"/api/v2/parseDagFile/{file_token}")[0]


@dataclass
class Requester:
    """Turns a plan into reparse requests, keeping Airflow's file tokens between saves."""

    api: AirflowApi
    tokens: dict[str, str] = field(default_factory=dict)

    def _request(self, relative: str) -> bool:
        token = self.tokens.get(relative)
        if token is None:
            return False
        status = self.api.reparse(token)
        if status == 404:  # the file's DAGs are gone from the database: a stale token
            self.tokens.pop(relative, None)
            return False
        if status not in (201, 409):
            raise ApiError(f"reparse of {relative} refused ({status})")
        return True

    def apply(self, work: Plan) -> list[str]:
        """Request every reparse; return what was done, one line per file."""
        done: list[str] = []
        unknown = sorted(relative for relative in work.reparse if not self._request(relative))
        if unknown:
            self.tokens = self.api.file_tokens()
            unknown = [relative for relative in unknown if not self._request(relative)]
        done += [
            f"{relative}: reparse requested" for relative in sorted(work.reparse) if relative not in unknown
        ]
        if unknown or work.rescan:
            what = ", ".join(unknown) or "bundle"
            if not self.tokens:
                self.tokens = self.api.file_tokens()
            # Any known file will do: its reparse request makes the dag-processor rescan the bundle
            # first, and the files it finds new go to the front of the queue.
            for relative in list(self.tokens):
                if self._request(relative):
                    done.append(f"{what}: bundle rescan requested (via {relative})")
                    break
            else:
                done.append(
                    f"{what}: no DAG in the bundle yet, so nothing to request a rescan with; Airflow finds "
                    "it at its next periodic rescan ([dag_processor] refresh_interval)"
                )
        return done


# --- watching -----------------------------------------------------------------------------------------


def mount_filesystem(path: Path, mounts_file: Path = Path("/proc/self/mounts")) -> str | None:
    """The type of the filesystem ``path`` lives on (Linux), or None when unknown."""
    try:
        lines = mounts_file.read_text().splitlines()
    except OSError:
        return None
    best, fstype = "", None
    resolved = str(path.resolve())
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        if (resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")) and len(
            mount_point
        ) >= len(best):
            best, fstype = mount_point, fields[2]
    return fstype


def choose_mode(
    env: Mapping[str, str], folder: Path, mounts_file: Path = Path("/proc/self/mounts")
) -> tuple[str, str]:
    """``events`` or ``poll``, and why: the setting, else polling on a host-shared bind mount."""
    setting = env.get(MODE_VARIABLE, "auto").strip().lower() or "auto"
    if setting not in MODES:
        raise LocalflowError(f"{MODE_VARIABLE}={setting!r} is not one of {', '.join(MODES)}.")
    if setting != "auto":
        return setting, f"{MODE_VARIABLE}={setting}"
    fstype = mount_filesystem(folder, mounts_file)
    if fstype in NO_EVENT_FILESYSTEMS:
        return "poll", f"{folder} is on {fstype}, a mount from another OS that may drop file events"
    return "events", f"{folder} is on {fstype or 'a local filesystem'}"


def start_observer(mode: str, folders: Folders, events: queue.Queue, poll_interval: float):
    """A running watchdog observer that puts every touched path on ``events``."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event) -> None:
            # A folder is "modified" whenever a file in it changes: that file's own event is enough.
            if event.event_type in {"opened", "closed_no_write"} or (
                event.is_directory and event.event_type == "modified"
            ):
                return
            for path in (event.src_path, getattr(event, "dest_path", "")):
                if path:
                    events.put(Path(os.fsdecode(path)))

    observer = PollingObserver(timeout=poll_interval) if mode == "poll" else Observer()
    for folder in folders.roots():
        folder.mkdir(parents=True, exist_ok=True)
        observer.schedule(Handler(), str(folder), recursive=True)
    observer.start()
    return observer


def collect(events: queue.Queue, timeout: float) -> set[Path]:
    """The paths of one burst of events (empty after ``timeout`` without any)."""
    try:
        batch = {events.get(timeout=timeout)}
    except queue.Empty:
        return set()
    while True:
        try:
            batch.add(events.get(timeout=QUIET_PERIOD))
        except queue.Empty:
            return batch


def password(env: Mapping[str, str]) -> str:
    """The admin password: from the environment, else from the workspace's ``.env``."""
    return env.get(secrets.ADMIN_PASSWORD) or secrets.load(settings.WORKSPACE)[secrets.ADMIN_PASSWORD]


def run(env: Mapping[str, str]) -> int:
    """Watch until SIGTERM or Ctrl-C."""
    folders = Folders.from_environment(env)
    mode, reason = choose_mode(env, folders.dags)
    poll_interval = float(env.get(POLL_INTERVAL_VARIABLE, DEFAULT_POLL_INTERVAL))
    stopping = StopRequest()
    if mode == "off":
        log(f"not watching ({reason})")
        while not stopping:
            time.sleep(1.0)
        return 0
    events: queue.Queue = queue.Queue()
    observer = start_observer(mode, folders, events, poll_interval)
    how = f"polling every {poll_interval:g} s" if mode == "poll" else "file events"
    log(f"watching {folders.dags} and {folders.plugins} with {how} ({reason})")
    requester = Requester(AirflowApi(api_base_url(env), settings.ADMIN_USER, password(env)))
    pending: set[Path] = set()
    ready = failing = False
    try:
        while not stopping:
            pending |= collect(events, timeout=1.0)
            try:
                if not ready:
                    requester.tokens = requester.api.file_tokens()
                    ready, failing = True, False
                    log(f"connected to {requester.api.base_url}")
                    threading.Thread(target=requester.api.warm_up, daemon=True).start()
                if pending:
                    started = time.monotonic()
                    for line in requester.apply(plan(pending, folders)):
                        log(f"{line} ({(time.monotonic() - started) * 1000:.0f} ms)")
                    pending = set()
                HEARTBEAT_FILE.touch()
            except ApiError as error:
                if ready or not failing:
                    log(f"api-server not reachable ({error}); retrying every second")
                ready, failing = False, True
                time.sleep(1.0)
    finally:
        observer.stop()
        observer.join(timeout=5)
    return 0


def check() -> int:
    """Container healthcheck: 0 when the watcher reached the api-server within the last minute."""
    try:
        age = time.time() - HEARTBEAT_FILE.stat().st_mtime
    except OSError:
        return 1
    return 0 if age < HEARTBEAT_MAX_AGE else 1


def main(args: list[str]) -> int:
    """``python -m localflow watch [--check]``."""
    if args == ["--check"]:
        return check()
    if args:
        raise LocalflowError("usage: python -m localflow watch [--check]")
    return run(settings.current_environment())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
