"""The package's layout holds: no import cycle, configuration at the bottom, shared modules below the
concerns, the modules Airflow loads kept light, each rule kept.

Every ``import`` counts, also those inside functions: a cycle through a deferred import is still one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from testkit.environment import REPO

PACKAGE = REPO / "localflow"
SUBPACKAGES = ("secrets", "stack", "debugging", "watcher", "container", "editor")  # the concerns
CONFIG = "localflow.config"  # configuration: every module may import it, it imports no concern


def module_name(path: Path) -> str:
    """``localflow/stack/up.py`` is ``localflow.stack.up``; a package is its ``__init__``."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def localflow_imports(name: str) -> set[str]:
    """The localflow modules ``name`` imports anywhere in its code (``from a import b`` may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            candidates = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {candidate for candidate in candidates if candidate in MODULES and candidate != name}
    return found


GRAPH = {name: localflow_imports(name) for name in MODULES}


def test_no_module_imports_a_module_that_imports_it_back():
    """No cycle of any length in the import graph."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        for imported in sorted(GRAPH[name]):
            visit(imported, [*path, name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])


def subpackage(name: str) -> str | None:
    """The subpackage a module belongs to, or None for a shared module."""
    parts = name.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in SUBPACKAGES else None


# The command line dispatches to every concern; it is the top, not a shared module.
TOP = ("localflow", "localflow.__main__")


@pytest.mark.parametrize("name", sorted(n for n in MODULES if subpackage(n) is None and n not in TOP))
def test_shared_modules_import_no_subpackage(name: str):
    """Shared modules (configuration included) sit below every concern: they never import one."""
    assert not {imported for imported in GRAPH[name] if subpackage(imported)}, name


def test_configuration_imports_nothing_above_it():
    """``localflow.config`` is the room every module reads settings from: it imports only itself and
    ``errors``, and its registry nothing at all (the bootstrap and Airflow's processes read it)."""
    for name in (n for n in MODULES if n == CONFIG or n.startswith(CONFIG + ".")):
        outside = {
            i for i in GRAPH[name] if not i.startswith(CONFIG) and i not in {"localflow", "localflow.errors"}
        }
        assert not outside, f"{name} imports {sorted(outside)}"
    assert not GRAPH[f"{CONFIG}.registry"], "the registry must import no localflow module"
    assert GRAPH[f"{CONFIG}.settings_yaml"] <= {CONFIG, f"{CONFIG}.registry"}


# Loaded inside Airflow's own processes (the plugin's listeners, airflow.env's executor and secrets
# backend, compose's api-server command): they may import each other and the registry, nothing else of
# localflow, or every Airflow process would load the workspace's tooling (and python-dotenv) with them.
IN_AIRFLOW_PROCESSES = (
    "localflow.debugging.isolation",
    "localflow.debugging.support",
    "localflow.execution_api",
    "localflow.secrets.backend",
    "localflow.stack.executor",
    "localflow.stack.parse_guard",
    "localflow.stack.parse_lookups",
    "localflow.stack.pools",
    "localflow.stack.task_output",
    "localflow.stack.wakeups",
    "localflow.stack.workers",
)
LIGHT = {
    *IN_AIRFLOW_PROCESSES,
    *(f"{CONFIG}.{name}" for name in ("registry", "settings_yaml")),  # the standard library and PyYAML only
    "localflow.internals",  # the standard library only: which internals hold in the installed release
    "localflow.releases",
    *("localflow", CONFIG, "localflow.stack", "localflow.debugging", "localflow.secrets"),  # docstrings
}


@pytest.mark.parametrize("name", IN_AIRFLOW_PROCESSES)
def test_modules_loaded_in_airflow_processes_stay_light(name: str):
    """What Airflow's processes load imports only the registry of localflow (and each other)."""
    assert GRAPH[name] <= LIGHT, f"{name} imports {sorted(GRAPH[name] - LIGHT)}"


def test_the_plugin_loads_only_light_modules():
    """plugins/localflow_plugin.py, loaded in every Airflow process, imports only light modules."""
    tree = ast.parse((REPO / "plugins" / "localflow_plugin.py").read_text())
    imported = {
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("localflow")
        for alias in node.names
    }
    assert imported and imported <= set(IN_AIRFLOW_PROCESSES), sorted(imported - set(IN_AIRFLOW_PROCESSES))


# (module, what it must not import, why): the rules the package docstrings state.
FORBIDDEN = [
    ("localflow.bootstrap", "localflow", "runs before anything is installed"),
    ("localflow.releases", "localflow", "the bootstrap reads it before anything is installed"),
    ("localflow.debugging.support", "localflow.config.settings", "loaded inside every task process"),
    ("localflow.stack.executor", "localflow", "loaded inside the scheduler, natively and in compose"),
    ("localflow.stack.task_output", "localflow", "loaded inside every task process"),
    ("localflow.stack.workers", "localflow", "loaded inside every task process of a native Celery worker"),
    ("localflow.container.entrypoint", "localflow", "runs as root before the command, in the image"),
    ("localflow.config.codespaces", "localflow", "the entrypoint imports it, as root before the command"),
    ("localflow.container.healthcheck", "localflow", "a healthcheck must start in a fraction of a second"),
    ("localflow.stack.supervisor", "localflow.secrets.prepare", "the supervisor only supervises"),
    ("localflow.stack.supervisor", "localflow.secrets.keyguard", "the supervisor only supervises"),
    ("localflow.watcher.run", "localflow.stack", "the watcher talks to Airflow only over REST"),
    *(
        (name, "localflow.stack", "the editor's commands run beside a stack, talking to it over REST")
        for name in sorted(MODULES)
        if name.startswith("localflow.editor")
    ),
]


# The exceptions to a rule above: (module, what it may import all the same), each itself bound by a rule
# (``from localflow.config import codespaces`` names the packages too, whose ``__init__`` are docstrings).
ALLOWED = {
    # The registry imports nothing (standard library only): what Airflow's processes load may read it.
    *(
        (name, dependency)
        for name in ("localflow.stack.executor", "localflow.stack.task_output", "localflow.stack.workers")
        for dependency in ("localflow.config", "localflow.config.registry")
    ),
    # internals says which of Airflow's internals the installed release has (the standard library only).
    ("localflow.stack.executor", "localflow"),
    ("localflow.stack.executor", "localflow.internals"),
    ("localflow.bootstrap", "localflow"),
    ("localflow.bootstrap", "localflow.releases"),
    ("localflow.container.entrypoint", "localflow"),
    ("localflow.container.entrypoint", "localflow.config"),
    ("localflow.container.entrypoint", "localflow.config.codespaces"),
    ("localflow.container.entrypoint", "localflow.config.registry"),
}


@pytest.mark.parametrize(("name", "forbidden", "why"), FORBIDDEN, ids=[f"{n}-{f}" for n, f, _ in FORBIDDEN])
def test_package_rules(name: str, forbidden: str, why: str):
    """What a module must not import, and why."""
    offending = {
        i
        for i in GRAPH[name]
        if (i == forbidden or i.startswith(forbidden + ".")) and (name, i) not in ALLOWED
    }
    assert not offending, f"{name} imports {sorted(offending)}, but {why}"


# What talks to Airflow over REST only: it runs beside a stack (the editor's commands, the watcher) and must
# show what the stack parsed and ran, not what an import of Airflow in its own process would find.
REST_ONLY = ("localflow.editor", "localflow.watcher")


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(REST_ONLY)))
def test_rest_only_modules_import_no_airflow(name: str):
    """The editor's commands and the watcher import no Airflow, not even inside a function."""
    imported = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module)
    assert not {i for i in imported if i == "airflow" or i.startswith("airflow.")}, name


def test_every_package_says_what_it_owns():
    """Each package's ``__init__`` has a docstring."""
    for name, path in MODULES.items():
        if path.name == "__init__.py":
            assert ast.get_docstring(ast.parse(path.read_text())), f"{name} has no docstring"
