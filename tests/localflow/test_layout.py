"""The package's layout holds: no import cycle, shared modules below the subpackages, each rule kept.

Every ``import`` counts, also those inside functions: a cycle through a deferred import is still one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from testkit.environment import REPO

PACKAGE = REPO / "localflow"
SUBPACKAGES = ("secrets", "stack", "debugging", "watcher", "container")


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
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in SUBPACKAGES) else None


# The command line dispatches to every concern; it is the top, not a shared module.
TOP = ("localflow", "localflow.__main__")


@pytest.mark.parametrize("name", sorted(n for n in MODULES if subpackage(n) is None and n not in TOP))
def test_shared_modules_import_no_subpackage(name: str):
    """Shared modules sit below every concern: they never import one."""
    assert not {imported for imported in GRAPH[name] if subpackage(imported)}, name


# (module, what it must not import, why): the rules the package docstrings state.
FORBIDDEN = [
    ("localflow.bootstrap", "localflow", "runs before anything is installed"),
    ("localflow.debugging.support", "localflow.settings", "loaded inside every task process"),
    (
        "localflow.secrets.backend",
        "localflow",
        "Airflow's secrets backend, loaded inside every Airflow process",
    ),
    ("localflow.stack.executor", "localflow", "loaded inside the scheduler, natively and in compose"),
    ("localflow.stack.task_output", "localflow", "loaded inside every task process"),
    ("localflow.stack.workers", "localflow", "loaded inside every task process of a native Celery worker"),
    ("localflow.container.entrypoint", "localflow", "runs as root before the command, in the image"),
    ("localflow.codespaces", "localflow", "the entrypoint imports it, as root before the command"),
    ("localflow.container.healthcheck", "localflow", "a healthcheck must start in a fraction of a second"),
    ("localflow.stack.supervisor", "localflow.secrets.prepare", "the supervisor only supervises"),
    ("localflow.stack.supervisor", "localflow.secrets.keyguard", "the supervisor only supervises"),
    ("localflow.watcher.run", "localflow.stack", "the watcher talks to Airflow only over REST"),
]


# The exceptions to a rule above: (module, what it may import all the same), each itself bound by a rule
# (``from localflow import codespaces`` names the package too, whose ``__init__`` is a docstring).
ALLOWED = {
    ("localflow.container.entrypoint", "localflow"),
    ("localflow.container.entrypoint", "localflow.codespaces"),
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


def test_every_package_says_what_it_owns():
    """Each package's ``__init__`` has a docstring."""
    for name, path in MODULES.items():
        if path.name == "__init__.py":
            assert ast.get_docstring(ast.parse(path.read_text())), f"{name} has no docstring"
