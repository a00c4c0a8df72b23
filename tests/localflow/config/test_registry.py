"""The registry is the one list of settings: the docs, .env.example and the code agree with it."""

from __future__ import annotations

import re

import pytest

from localflow.config import registry
from testkit.environment import REPO

# A LOCALFLOW_* variable (not the tail of a connection id such as AIRFLOW_CONN_LOCALFLOW_POSTGRES).
NAME = re.compile(r"(?<![A-Z0-9_])LOCALFLOW_[A-Z0-9_]*[A-Z0-9]")
SOURCES = [
    *sorted((REPO / "localflow").rglob("*.py")),
    *sorted((REPO / "testkit").rglob("*.py")),
    REPO / "docker-compose.yaml",
    REPO / "Dockerfile",
    REPO / ".devcontainer" / "devcontainer.json",
    REPO / ".vscode" / "launch.json",
]
# Names in the code that are not settings: constants, and the prefix itself.
NOT_SETTINGS = {"LOCALFLOW_COMPONENTS", "LOCALFLOW_PACKAGE"}


def names_in(paths) -> set[str]:
    return {name for path in paths for name in NAME.findall(path.read_text())} - NOT_SETTINGS


def test_every_variable_the_code_reads_is_registered():
    """A LOCALFLOW_* name in the code, compose or the image is a setting of the table."""
    assert names_in(SOURCES) <= set(registry.BY_NAME), sorted(names_in(SOURCES) - set(registry.BY_NAME))


def test_every_registered_setting_is_read_somewhere():
    """No entry of the table is dead: each LOCALFLOW_* setting is named by the code, compose or the tests."""
    used = names_in([*SOURCES, *sorted((REPO / "tests").rglob("*.py"))])
    registered = {name for name in registry.BY_NAME if name.startswith(registry.PREFIX)}
    assert registered <= used, sorted(registered - used)


def test_env_example_names_only_registered_settings():
    """Every LOCALFLOW_* line of .env.example, commented out or not, is one a user may set."""
    names = NAME.findall((REPO / ".env.example").read_text())
    assert names
    for name in names:
        assert registry.BY_NAME[name].scope == registry.USER, name


@pytest.mark.parametrize("scope", [registry.USER, registry.INTERNAL, registry.TEST, registry.OWNED])
def test_docs_show_the_registry(scope: str):
    """docs/configuration.md holds each table as the registry makes it."""
    table = registry.markdown_table((scope,))
    assert table in (REPO / "docs" / "configuration.md").read_text(), (
        f"docs/configuration.md is out of date: paste `python -m localflow.config.registry {scope}` there"
    )


# value of LOCALFLOW_PRELOAD (default on) and LOCALFLOW_WAKEUPS (default off): what the switch says
SWITCH_CASES = (
    (None, True, False),
    ("", True, False),
    ("on", True, True),
    ("TRUE", True, True),
    (" yes ", True, True),
    ("1", True, True),
    ("off", False, False),
    ("False", False, False),
    ("no", False, False),
    ("0", False, False),
)


@pytest.mark.parametrize(("value", "preload", "wakeups"), SWITCH_CASES)
def test_one_rule_for_every_switch(value, preload: bool, wakeups: bool):
    """Every switch reads the same words the same way; unset or empty is the switch's default."""
    for name, expected in (("LOCALFLOW_PRELOAD", preload), ("LOCALFLOW_WAKEUPS", wakeups)):
        env = {} if value is None else {name: value}
        assert registry.switch(env, name) is expected


# .env line, the one problem it gives (None: none)
PROBLEM_CASES = (
    ("LOCALFLOW_DEBUG_TASKS=example_etl.transform", None),
    ("LOCALFLOW_DEBUG_TASK=example_etl.transform", "did you mean LOCALFLOW_DEBUG_TASKS?"),
    ("LOCALFLOW_WARMRUNNER=off", "did you mean LOCALFLOW_WARM_RUNNER?"),
    ("LOCALFLOW_NOTHING_LIKE_IT=1", "LOCALFLOW_NOTHING_LIKE_IT: the workspace has no such setting"),
    ("LOCALFLOW_PRELOAD=maybe", "LOCALFLOW_PRELOAD='maybe': a switch is on or off"),
    ("LOCALFLOW_WATCH=inotify", "choose one of auto, events, poll, off"),
    ("LOCALFLOW_DEBUG_PORT=70000", "a port is expected"),
    ("LOCALFLOW_DEBUG_WAIT=soon", "a number is expected"),
    ("LOCALFLOW_PRELOAD=", None),
    ("AIRFLOW__CORE__PARALELISM=2", None),  # Airflow's names are validation.py's
)


@pytest.mark.parametrize(("line", "expected"), PROBLEM_CASES)
def test_problems_name_the_fix(line: str, expected: str | None):
    """A mistake is one line naming the setting and, for a typo, the nearest valid name."""
    name, _, value = line.partition("=")
    found = registry.problems({name: value})
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0], found


def test_profiles_ignore_spaces():
    """COMPOSE_PROFILES is read one way everywhere: comma-separated, spaces ignored."""
    assert registry.profiles({"COMPOSE_PROFILES": " celery , s3,,"}) == {"celery", "s3"}


def test_the_workspace_is_found_one_way(tmp_path):
    """LOCALFLOW_WORKSPACE, else the checkout this package is in."""
    assert registry.workspace({}) == REPO
    assert registry.workspace({"LOCALFLOW_WORKSPACE": str(tmp_path)}) == tmp_path
