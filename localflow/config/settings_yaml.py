"""``airflow_settings.yaml``, the workspace's connections and variables: the one reader of the file.

The secrets backend (``secrets/backend.py``) serves what this reads, in every Airflow process; the native
stack asks it which connections the file defines (``remote_logs``). PyYAML and the standard library only,
no Airflow: Airflow imports the backend while it starts. Two layouts: the workspace's own
(``connections:`` / ``variables:`` mappings) and the Astro CLI's (``airflow:`` with lists).

The file is read again when it changes (one ``stat`` per lookup), so an edit is seen without a restart.
A bad entry is skipped with one logged line naming the file, the entry and the fix, once per change of
the file; the good entries keep working. A missing file means no entries.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from localflow.config import registry

FILE_NAME = registry.SETTINGS_FILE_NAME
EXAMPLE_NAME = registry.SETTINGS_EXAMPLE_NAME
# Airflow's Connection fields, as its LocalFilesystemBackend and Connection.from_json accept them.
CONNECTION_FIELDS = ("conn_type", "host", "login", "password", "schema", "port", "extra", "description")
# Astro CLI's airflow_settings.yaml names the same fields with a prefix: conn_host, conn_login, ...
ASTRO_PREFIX = "conn_"
SECTIONS = ("connections", "variables", "pools")

# The backend's logger: its lines are the backend's in task and component logs (and tests/dags/ reads it).
log = logging.getLogger("localflow.secrets.backend")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def settings_file() -> Path:
    """Where the file is: ``LOCALFLOW_SETTINGS_FILE``, else in ``LOCALFLOW_WORKSPACE``, else beside the package.

    Natively the folder that holds the ``localflow`` package is the workspace; in the image the package is
    in /opt/localflow, so compose sets ``LOCALFLOW_WORKSPACE``.
    """
    if os.environ.get("LOCALFLOW_SETTINGS_FILE"):
        return Path(os.environ["LOCALFLOW_SETTINGS_FILE"])
    return registry.workspace() / FILE_NAME


@dataclass
class Settings:
    """What one version of the file holds: serialized connections, variables, and what was wrong."""

    connections: dict[str, str] = field(default_factory=dict)  # conn_id -> URI or Connection JSON
    variables: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # pool name -> (slots, description): not a secret; the scheduler writes them into the database
    # (localflow/stack/pools.py), as Airflow has no backend for pools.
    pools: dict[str, tuple[int, str]] = field(default_factory=dict)


class _Entry:
    """One connection or variable as written: its section, id, line and YAML node."""

    def __init__(self, section: str, name: str, line: int, node: yaml.Node) -> None:
        self.section, self.name, self.line, self.node = section, name, line, node

    def describe(self) -> str:
        return f"{self.section[:-1]} {self.name!r} (line {self.line})"


def parse(text: str, path: Path) -> Settings:
    """The entries of the file's ``text``; each bad one is left out and described in ``problems``."""
    result = Settings()
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        where, what = _mistake(text, error)
        result.problems.append(
            f"{path}:{where} not valid YAML ({what}); fix it there (the layout is in "
            f"{EXAMPLE_NAME}). Until then no connection or variable is read from this file."
        )
        return result
    except yaml.YAMLError as error:
        result.problems.append(
            f"{path}: not valid YAML ({error}); no entry is read from it until it is fixed."
        )
        return result
    try:
        _read_entries(loader, root, path, result)
    finally:
        loader.dispose()
    return result


# PyYAML reports where it noticed a mistake, often lines after it: an unclosed quote or bracket at the
# end of the file, a key without its `:` at the next line. These contexts mark where the mistake began.
_OPENED = ("while scanning a quoted scalar", "while scanning a simple key", "while parsing a flow")


def _mistake(text: str, error: yaml.MarkedYAMLError) -> tuple[str, str]:
    """`` line N, column C:`` of the mistake in ``text``, and what is wrong there, in a few words."""
    noticed = error.problem_mark
    context = error.context or ""
    if error.context_mark and (noticed is None or context.startswith(_OPENED)):
        mark = error.context_mark
        what = f"{error.problem}, at line {noticed.line + 1}" if noticed else str(error.problem)
        what = f"{context.removeprefix('while ')} that starts here: {what}"
    else:
        mark, what = noticed, str(error.problem)
        runs_on = noticed and what.startswith("mapping values are not allowed")
        started = _plain_value_start(text, noticed) if runs_on else None
        if started is not None and started.line < noticed.line:
            # A plain value runs on over line breaks, so a key written without its `:` (or a line
            # indented too far) joins the next line, and PyYAML stops at that line's `:`.
            mark, what = (
                started,
                f"the text that starts here runs on to line {noticed.line + 1}, where ':' is not "
                f"allowed: a key without ': ' after it here, or line {noticed.line + 1} indented too far",
            )
    return (f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""), what


def _plain_value_start(text: str, noticed: yaml.Mark) -> yaml.Mark | None:
    """Where the last value before ``noticed`` starts, from PyYAML's pure Python scanner (errors only)."""
    last = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.ScalarToken) and token.plain:
                last = token.start_mark
            elif token.start_mark.index >= noticed.index:
                break
    except yaml.YAMLError:
        pass
    return last


def _read_entries(loader: yaml.SafeLoader, root: yaml.Node | None, path: Path, result: Settings) -> None:
    if root is None:
        return
    entries = _entries(root, path, result.problems)
    counts: dict[tuple[str, str], list[int]] = {}
    for entry in entries:
        counts.setdefault((entry.section, entry.name), []).append(entry.line)
    for (section, name), lines in counts.items():
        if len(lines) > 1:
            result.problems.append(
                f"{path}: {section[:-1]} {name!r} is defined {len(lines)} times (lines "
                f"{', '.join(map(str, lines))}); keep one of them. None of them is used until then."
            )
    for entry in entries:
        if len(counts[(entry.section, entry.name)]) > 1:
            continue
        try:
            duplicate = _duplicate_key(entry.node)
            if duplicate:
                raise ValueError(f"has {duplicate[0]!r} twice (line {duplicate[1]}); keep one")
            value = _Loader.construct_object(loader, entry.node, deep=True)
            if entry.section == "connections":
                result.connections[entry.name] = _connection(value)
            elif entry.section == "pools":
                result.pools[entry.name] = _pool(value)
            else:
                result.variables[entry.name] = _variable(value)
        except ValueError as error:
            result.problems.append(
                f"{path}: {entry.describe()} {error}. Skipped; the other entries are used."
            )


def _entries(root: yaml.Node, path: Path, problems: list[str]) -> list[_Entry]:
    """Every entry of the file, in this layout or in the Astro CLI's (``airflow: {connections: [...]}``)."""
    if not isinstance(root, yaml.MappingNode):
        problems.append(
            f"{path}: expected `connections:`, `variables:` and `pools:` at the top (see {EXAMPLE_NAME})."
        )
        return []
    sections = {key.value: value for key, value in root.value}
    if set(sections) == {"airflow"}:
        return _astro_entries(sections["airflow"], path, problems)
    entries = []
    for key, value in root.value:
        if key.value not in SECTIONS:
            problems.append(
                f"{path}: unknown section {key.value!r} (line {key.start_mark.line + 1}); the file has "
                "`connections:`, `variables:` and `pools:` only. Its entries are ignored."
            )
        elif isinstance(value, yaml.MappingNode):
            entries += [_Entry(key.value, k.value, k.start_mark.line + 1, v) for k, v in value.value]
        elif not (isinstance(value, yaml.ScalarNode) and value.value in {"", "~", "null"}):
            problems.append(
                f"{path}: `{key.value}:` (line {key.start_mark.line + 1}) must map each id to its value "
                f"(see {EXAMPLE_NAME}). Its entries are ignored."
            )
    return entries


def _astro_entries(airflow: yaml.Node, path: Path, problems: list[str]) -> list[_Entry]:
    """Astro CLI's layout: lists of ``{conn_id, conn_type, conn_host, ...}``, ``{variable_name, variable_value}``
    and ``{pool_name, pool_slot, pool_description}``."""
    entries = []
    id_keys = {"connections": "conn_id", "variables": "variable_name", "pools": "pool_name"}
    for key, value in airflow.value if isinstance(airflow, yaml.MappingNode) else []:
        if key.value not in id_keys or not isinstance(value, yaml.SequenceNode):
            continue  # empty sections
        for item in value.value:
            fields = {k.value: v for k, v in item.value} if isinstance(item, yaml.MappingNode) else {}
            if fields and all(_is_empty(v) for v in fields.values()):
                continue  # `astro dev init`'s blank template item (`- pool_name:` ...)
            name_node = fields.pop(id_keys[key.value], None)
            line = item.start_mark.line + 1
            if name_node is None or not name_node.value:
                problems.append(
                    f"{path}: an item of airflow.{key.value} (line {line}) has no {id_keys[key.value]}."
                )
                continue
            if key.value == "connections":
                node = yaml.MappingNode(
                    "tag:yaml.org,2002:map",
                    [
                        (yaml.ScalarNode("tag:yaml.org,2002:str", _astro_field(k)), v)
                        for k, v in fields.items()
                        if not _is_empty(v)
                    ],
                )
            elif key.value == "pools":
                node = yaml.MappingNode(
                    "tag:yaml.org,2002:map",
                    [
                        (yaml.ScalarNode("tag:yaml.org,2002:str", k.removeprefix("pool_")), v)
                        for k, v in fields.items()
                    ],
                )
            else:
                node = fields.get("variable_value", yaml.ScalarNode("tag:yaml.org,2002:null", "null"))
            entries.append(_Entry(key.value, name_node.value, line, node))
    return entries


def _is_empty(node: yaml.Node) -> bool:
    """A field written without a value (``conn_host:``)."""
    return isinstance(node, yaml.ScalarNode) and node.value in {"", "~", "null"}


def _astro_field(name: str) -> str:
    """Astro's ``conn_host`` is Airflow's ``host``; ``conn_type`` keeps its name."""
    return name if name == "conn_type" else name.removeprefix(ASTRO_PREFIX)


def _duplicate_key(node: yaml.Node) -> tuple[str, int] | None:
    """The first key written twice in one mapping under ``node`` (PyYAML would keep the last silently)."""
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            if key.value in seen:
                return key.value, key.start_mark.line + 1
            seen.add(key.value)
            found = _duplicate_key(value)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _duplicate_key(item)
            if found:
                return found
    return None


def _connection(value: Any) -> str:
    """A connection as Airflow's backends hand it over: a URI, or the JSON of its fields."""
    if isinstance(value, str):
        if "://" not in value or not value.split("://", 1)[0]:
            raise ValueError(
                "is not a connection URI; write conn_type://login:password@host:port/schema "
                "(percent-encode special characters), or a mapping with conn_type and host"
            )
        from airflow.sdk.definitions.connection import Connection

        try:  # Airflow's own parser, the one a task uses
            Connection.from_uri(value, conn_id="check")
            urlsplit(value).port  # noqa: B018 - raises ValueError for a port that is not a number
        except Exception as error:
            raise ValueError(
                f"is not a valid URI ({error}); check the port and percent-encode special characters"
            ) from None
        return value
    if not isinstance(value, dict):
        raise ValueError("must be a URI string or a mapping with conn_type, host, login, password, ...")
    unknown = sorted(set(value) - set(CONNECTION_FIELDS))
    if unknown:
        raise ValueError(f"has unknown field(s) {', '.join(unknown)}; use {', '.join(CONNECTION_FIELDS)}")
    if not value.get("conn_type"):
        raise ValueError("has no conn_type; add one, e.g. `conn_type: postgres`")
    port = value.get("port")
    if port not in (None, "") and not str(port).isdigit():
        raise ValueError(f"has port {port!r}, which is not a number")
    extra = value.get("extra")
    if isinstance(extra, str) and extra.strip():
        try:
            json.loads(extra)
        except json.JSONDecodeError:
            raise ValueError("has an extra that is not JSON; write it as a mapping instead") from None
    return json.dumps({key: item for key, item in value.items() if item is not None}, default=str)


def _pool(value: Any) -> tuple[int, str]:
    """A pool's slots and description, from ``{slots, description}`` (Astro: ``pool_slot``) or a number."""
    if not isinstance(value, dict):
        value = {"slots": value}
    unknown = sorted(set(value) - {"slots", "slot", "description"})
    if unknown:
        raise ValueError(f"has unknown field(s) {', '.join(unknown)}; use slots and description")
    slots = value.get("slots", value.get("slot"))
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < -1:
        raise ValueError(f"has slots {slots!r}; write a number of slots, e.g. `slots: 2` (-1: unlimited)")
    return slots, str(value.get("description") or "")


def _variable(value: Any) -> str:
    """A variable's value as Airflow stores it: strings as written, anything else as JSON."""
    if value is None:
        raise ValueError("has no value; write `key: ''` for an empty string")
    return value if isinstance(value, str) else json.dumps(value, default=str)


class _FileCache:
    """The parsed file, shared by every backend instance of the process, reparsed when the file changes.

    Airflow builds a new backend list for some lookups, so the parsed state (and the memory of which
    problems were logged) lives here, per path, not in the instance.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[Path, tuple[tuple[int, ...] | None, Settings]] = {}

    def get(self, path: Path) -> Settings:
        try:
            stat = path.stat()
            signature: tuple[int, ...] | None = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            signature = None
        except OSError as error:
            signature = (-1, error.errno or 0)
        with self._lock:
            cached = self._by_path.get(path)
            if cached and cached[0] == signature:
                return cached[1]
            settings = self._read(path) if signature else Settings()
            for problem in settings.problems:
                log.warning("%s", problem)
                if logging.getLogger().manager.disable >= logging.WARNING:
                    # Airflow's CLI turns logging off around `connections get`, `variables get` and
                    # others (its suppress_logs_and_warning); they would only say "not found".
                    print(f"WARNING: {problem}", file=sys.stderr, flush=True)
            self._by_path[path] = (signature, settings)
            return settings

    @staticmethod
    def _read(path: Path) -> Settings:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Settings()
        except (OSError, UnicodeDecodeError) as error:
            return Settings(
                problems=[f"{path}: cannot read it ({error.__class__.__name__}); check its owner and mode."]
            )
        return parse(text, path)


_CACHE = _FileCache()


def read(path: Path | None = None) -> Settings:
    """The file's entries now: parsed again only when it changed; each problem logged once per change."""
    return _CACHE.get(path or settings_file())
