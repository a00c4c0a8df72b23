"""Every private internal the workspace relies on still exists in the installed Airflow and CPython.

An upgrade that drops one fails here, naming it, what relies on it and why, instead of breaking a debug
run or the scheduler silently.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
from collections.abc import Callable

import pytest

from localflow import internals, releases
from testkit import releases as testkit_releases
from testkit.environment import REPO


@pytest.mark.parametrize("internal", internals.INTERNALS, ids=lambda internal: internal.qualified_name)
def test_internal_still_exists(internal: internals.Internal):
    """The installed packages still have it, in the shape the workspace uses (from its ``since`` on)."""
    installed = importlib.metadata.version("apache-airflow")
    problem = internals.problem(internal)
    if not internal.holds_in(installed):
        assert problem, f"{internal.qualified_name} holds in {installed}: its since={internal.since} is wrong"
        return
    assert problem is None, (
        f"{problem}: localflow/{internal.used_by} relies on it ({internal.why}); installed: "
        f"apache-airflow {installed}. Adapt that module and localflow/internals.py to the new version."
    )


@pytest.fixture(scope="module")
def problems_by_release() -> Callable[[str], list[str | None]]:
    """Each supported release's probe of the internals, made once (its venv built on first use)."""
    return functools.cache(testkit_releases.internal_problems)


@pytest.mark.releases
@pytest.mark.parametrize("release", releases.SUPPORTED)
@pytest.mark.parametrize("internal", internals.INTERNALS, ids=lambda internal: internal.qualified_name)
def test_internal_holds_in_the_releases_it_states(
    internal: internals.Internal, release: str, problems_by_release
):
    """In each supported release's own venv the internal holds exactly from its ``since`` on."""
    problem = problems_by_release(release)[internals.INTERNALS.index(internal)]
    if internal.holds_in(release):
        assert problem is None, f"{problem} in Airflow {release}: localflow/{internal.used_by} relies on it"
    else:
        assert problem, (
            f"{internal.qualified_name} holds in Airflow {release}: since={internal.since} is wrong"
        )


def private_names_used(path) -> set[str]:
    """``_name`` attributes the code reads from something other than ``self``/``cls`` (or calls on super())."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        attr = node.attr
        if not attr.startswith("_") or attr.startswith("__"):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
            continue
        names.add(attr)
    return names


# Names of our own objects, and underscore names that are documented public API (os._exit).
OWN_OR_PUBLIC = frozenset({"_in_flight", "_retiring", "_idle_since", "_localflow_safe", "_exit"})


@pytest.mark.parametrize(
    "path", sorted((REPO / "localflow").rglob("*.py")), ids=lambda path: str(path.relative_to(REPO))
)
def test_every_private_name_the_code_reads_is_listed(path):
    """A ``module._name`` or ``super()._name`` in localflow's code has a row in localflow/internals.py."""
    listed = {internal.name.rsplit(".", 1)[-1] for internal in internals.INTERNALS}
    unlisted = private_names_used(path) - listed - OWN_OR_PUBLIC
    assert not unlisted, f"{path.name} reads private {sorted(unlisted)}: add a row to localflow/internals.py"
