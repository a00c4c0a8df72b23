"""Catch a mistyped Airflow setting in ``.env`` before Airflow silently ignores it.

``AIRFLOW__CORE__PARALELISM=4`` is accepted by Airflow without a word and does nothing. The known sections
and options come from Airflow's own configuration description (core and installed providers).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from localflow.errors import LocalflowError

PREFIX = "AIRFLOW__"
SUFFIXES = ("_CMD", "_SECRET")  # Airflow's indirections: the option's value comes from a command / backend


def known_options() -> dict[str, set[str]]:
    """Airflow's sections and their options, as environment-variable names use them (upper case)."""
    from airflow.configuration import conf

    return {
        section.upper(): {option.upper() for option in spec.get("options", {})}
        for section, spec in conf.configuration_description.items()
    }


def unknown_settings(values: Mapping[str, str], known: Mapping[str, set[str]]) -> list[str]:
    """One message per AIRFLOW__SECTION__OPTION name that Airflow does not know, with a suggestion."""
    problems = []
    for name in values:
        if not name.startswith(PREFIX):
            continue
        section, _, option = name[len(PREFIX) :].partition("__")
        for suffix in SUFFIXES:
            if option.endswith(suffix) and option[: -len(suffix)] in known.get(section, ()):
                option = option[: -len(suffix)]
        if section not in known:
            guess = difflib.get_close_matches(section, known, n=1)
            hint = f"; did you mean AIRFLOW__{guess[0]}__{option}?" if guess else ""
            problems.append(f"{name}: Airflow has no section [{section.lower()}]{hint}")
        elif option not in known[section]:
            guess = difflib.get_close_matches(option, known[section], n=1)
            hint = f"; did you mean AIRFLOW__{section}__{guess[0]}?" if guess else ""
            problems.append(f"{name}: [{section.lower()}] has no option {option.lower()}{hint}")
    return problems


def check(values: Mapping[str, str], source: str) -> None:
    """Raise one clear line for the first unknown Airflow setting in ``source``."""
    problems = unknown_settings(values, known_options())
    if problems:
        raise LocalflowError(f"unknown setting in {source}: {problems[0]} (Airflow would ignore it).")
