"""The Airflow releases the workspace runs on, chosen in one place: ``LOCALFLOW_AIRFLOW_VERSION`` in ``.env``.

Standard library only, and no other localflow import: the bootstrap reads it before anything is installed.
The default release is the one ``requirements.txt`` locks (pyproject.toml's pin); each other supported
release has its locks in ``locks/airflow-X.Y.Z/``, compiled from the same pyproject.toml with the Airflow
pin replaced (``overrides.txt`` there). Another 3.x patch gets such a folder on demand (docs/releases.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

SETTING = "LOCALFLOW_AIRFLOW_VERSION"
# The newest patch of each Airflow 3 minor on PyPI: the releases the tests run on.
SUPPORTED = ("3.0.6", "3.1.8", "3.2.2", "3.3.2")
LOCKED = "3.3.2"  # requirements.txt's, pyproject.toml's pin: the release of a fresh clone
# Where the stack, dag-test and F5 run; on the others they install, switch and migrate, but do not run yet
# (docs/releases.md, "What works on each release": issue #24, item 2).
RUNS_ON = frozenset({"3.1.8", "3.2.2", "3.3.2"})
OLDEST = SUPPORTED[0]
LOCKS_DIR = "locks"
OVERRIDES = "overrides.txt"
# pyproject.toml's Airflow requirement, extras included, for overrides.txt.
AIRFLOW_REQUIREMENT = "apache-airflow[postgres,celery]"
RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
# The newest Python a release's lock installs on from wheels, where it is older than the workspace's 3.13.
NEWEST_PYTHON = {"3.0.6": "3.12"}  # Airflow 3.0 needs SQLAlchemy 1.4, which has no wheels for Python 3.13
# Packages held back in a release's lock (its overrides.txt), where a newer one breaks that release.
HELD_BACK = {
    # svcs 26.2 detaches its registry from app.state when a lifespan ends; before 3.3 each in-process
    # Execution API is dropped once its client is made, so its lifespan ends when it is garbage collected,
    # and every task of dag.test() (and the triggerer's and dag-processor's calls) fails with
    # "'State' object has no attribute 'svcs_registry'". 3.3 keeps the API, and its lifespan, alive.
    "3.1.8": ("svcs<26.2",),
    "3.2.2": ("svcs<26.2",),
}


class ReleaseError(ValueError):
    """A value of LOCALFLOW_AIRFLOW_VERSION the workspace cannot run on; the message is one line."""


def chosen(env: Mapping[str, str]) -> str:
    """The release ``env`` chooses (``LOCKED`` when unset or empty); ``ReleaseError`` for one it cannot run."""
    raw = env.get(SETTING, "").strip()
    if not raw:
        return LOCKED
    match = RELEASE.match(raw)
    if not match:
        raise ReleaseError(
            f"{SETTING}={raw!r} is not a release: write MAJOR.MINOR.PATCH, one of {', '.join(SUPPORTED)}"
        )
    if int(match[1]) < 3:
        raise ReleaseError(
            f"{SETTING}={raw}: Airflow {match[1]} is not supported (the workspace is for Airflow 3); "
            f"the oldest supported release is {OLDEST}"
        )
    if int(match[1]) > 3:
        raise ReleaseError(
            f"{SETTING}={raw}: Airflow {match[1]} is not supported yet; choose one of {', '.join(SUPPORTED)}"
        )
    return raw


def untested(release: str) -> bool:
    """A 3.x patch the tests do not run on."""
    return release not in SUPPORTED


def untested_notice(release: str) -> str:
    """The one line said at start for an untested release."""
    return (
        f"localflow: Airflow {release} is untested; the tested releases are {', '.join(SUPPORTED)} "
        f"({SETTING} in .env)."
    )


def lock_dir(release: str) -> str:
    """The folder of ``release``'s locks, relative to the workspace ("" for the default release)."""
    return "" if release == LOCKED else f"{LOCKS_DIR}/airflow-{release}"


def lock_path(release: str, name: str) -> str:
    """``name`` (requirements.txt, ...) of ``release``, relative to the workspace."""
    folder = lock_dir(release)
    return f"{folder}/{name}" if folder else name


def overrides_text(release: str) -> str:
    """overrides.txt of ``release``: pyproject.toml's Airflow requirement at that release, and the packages
    held back for it."""
    return "".join(f"{line}\n" for line in (f"{AIRFLOW_REQUIREMENT}=={release}", *HELD_BACK.get(release, ())))


def python_refusal(release: str, python: tuple[int, int]) -> str | None:
    """Why ``release`` cannot run on Python ``python`` (major, minor), in one line, or None."""
    newest = NEWEST_PYTHON.get(release)
    if newest and python > tuple(int(part) for part in newest.split(".")):
        return (
            f"{SETTING}={release}: Airflow {release} installs on Python 3.10 to {newest}, this is "
            f"{python[0]}.{python[1]}; run python3.{newest.split('.')[1]} -m localflow after removing .venv, "
            "or choose a newer release"
        )
    return None


def not_running_yet(installed: str | None, command: str) -> str | None:
    """One line when ``command`` (``up``, ``dag-test``, ``init``) does not run on the installed release yet."""
    if installed is None or installed in RUNS_ON:
        return None
    return (
        f"localflow: warning: `{command}` does not run on Airflow {installed} yet, only on "
        f"{', '.join(sorted(RUNS_ON))} (docs/releases.md); remove {SETTING} from .env to go back to {LOCKED}."
    )
