"""Catch settings that would be accepted without a word and then not honoured, at every entry point.

``AIRFLOW__CORE__PARALELISM=4`` is accepted by Airflow and does nothing; ``LOCALFLOW_DEBUG_TASKS`` without its S
by the workspace. Airflow's names come from its own configuration description (core and installed
providers), the workspace's from ``registry``. ``up`` and compose's init refuse a mistake in ``.env``
(``check``); F5, ``dag-test``, ``airflow``, ``check`` and ``test`` say it in one line and go on (``warn``),
so that a typo never blocks a debug session. A parse timeout longer than the dag-processor's kill timeout
hides a hanging DAG file instead of reporting it. ``python -m localflow.config.validation`` prints the
warnings of the environment it runs in.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from localflow.config import registry, settings
from localflow.errors import LocalflowError

PREFIX = "AIRFLOW__"
SUFFIXES = ("_CMD", "_SECRET")  # Airflow's indirections: the option's value comes from a command / backend


# A DAG file that hangs at import becomes an import error only when the import times out
# ([core] dagbag_import_timeout) before the dag-processor kills the whole parsing process
# ([dag_processor] dag_file_processor_timeout), which records nothing.
IMPORT_TIMEOUT = ("core", "dagbag_import_timeout")
PROCESSOR_TIMEOUT = ("dag_processor", "dag_file_processor_timeout")


def env_name(section: str, option: str) -> str:
    """The environment variable that sets ``[section] option``."""
    return f"{PREFIX}{section.upper()}__{option.upper()}"


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


def timeout_problem(values: Mapping[str, str], defaults: Mapping[tuple[str, str], str]) -> str | None:
    """A message when a hanging DAG file would be killed before its import times out, else None."""
    import_name, processor_name = env_name(*IMPORT_TIMEOUT), env_name(*PROCESSOR_TIMEOUT)
    try:
        import_timeout = float(values.get(import_name, defaults[IMPORT_TIMEOUT]))
        processor_timeout = float(values.get(processor_name, defaults[PROCESSOR_TIMEOUT]))
    except ValueError:
        return f"{import_name} and {processor_name} must be numbers of seconds"
    if 0 < import_timeout < processor_timeout:
        return None
    return (
        f"{processor_name} ({processor_timeout:g} s) must be longer than {import_name} "
        f"({import_timeout:g} s, and above 0), or a DAG file that hangs at import is killed without an import error"
    )


def airflow_default(section: str, option: str) -> str:
    """Airflow's default value of an option."""
    from airflow.configuration import conf

    return conf.configuration_description[section]["options"][option]["default"]


def problems(values: Mapping[str, str], known: Mapping[str, set[str]]) -> list[str]:
    """Every mistake in ``values``, one line each: the workspace's own names, then Airflow's."""
    return [
        *registry.problems(values),
        *(f"{problem} (Airflow would ignore it)" for problem in unknown_settings(values, known)),
    ]


def check(values: Mapping[str, str], source: str) -> None:
    """Raise one clear line for the first mistaken setting in ``source`` (``up``, compose's init)."""
    found = problems(values, known_options())
    if found:
        raise LocalflowError(_sentence(f"unknown setting in {source}: {found[0]}"))


def warn(values: Mapping[str, str], source: str = "your settings") -> None:
    """Say each mistaken setting in one line on stderr, and go on (F5, ``dag-test``, ``airflow``)."""
    for problem in problems(values, known_options()):
        print(
            _sentence(f"localflow: warning: unknown setting in {source}: {problem}"),
            file=sys.stderr,
            flush=True,
        )


def _sentence(text: str) -> str:
    return text if text.endswith("?") else f"{text}."


def warn_in_child(env: Mapping[str, str]) -> None:
    """``warn`` for ``env`` from a child process, for a command that does not import Airflow itself
    (``test``, ``check``). Airflow reads its configuration there in a throwaway home: these commands
    write nothing of the workspace's (``.airflow/``)."""
    with tempfile.TemporaryDirectory(prefix="localflow-validation-") as home:
        child_env = {
            **env,
            **settings.home_settings(Path(home)),
            "AIRFLOW_CONFIG": os.path.join(home, "airflow.cfg"),
        }
        subprocess.run([sys.executable, "-m", __name__], env=child_env, check=False)


def check_parse_timeouts(effective: Mapping[str, str]) -> None:
    """Raise one clear line when the settings in force would hide a DAG file that hangs at import."""
    defaults = {key: airflow_default(*key) for key in (IMPORT_TIMEOUT, PROCESSOR_TIMEOUT)}
    problem = timeout_problem(effective, defaults)
    if problem:
        raise LocalflowError(f"{problem}; fix it in .env.")


if __name__ == "__main__":
    warn(os.environ)
