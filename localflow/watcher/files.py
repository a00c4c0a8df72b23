"""Which files matter to Airflow, and which DAG files a batch of saved paths asks to reparse.

A save of a helper module (under ``plugins/``, or a non-DAG module under ``dags/``) reparses the DAG files
that import it, directly or through other helpers: each parse runs in a fresh process, so they see the new
code (Airflow itself would only notice at the next periodic reparse: apache/airflow #57621, #39975).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from localflow.config import settings

IGNORED_DIRECTORIES = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".mypy_cache", ".ruff_cache"})


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
