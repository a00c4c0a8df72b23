"""Airflow's stock settings: what the benchmarks compare localflow's tuning with.

Every setting below the tuning line of ``localflow/config/airflow.env`` is one localflow chose; "stock" sets each
back to Airflow's default (from Airflow's own ``config.yml``), turns the dag watcher off and starts each
component as its own ``airflow`` process.
"""

from __future__ import annotations

import importlib.resources

from localflow.config import envfile, settings

TUNING_MARKER = "# ---- tuning"


def airflow_default(name: str) -> str:
    """Airflow's default for ``AIRFLOW__SECTION__OPTION``; "" for a variable that is not Airflow's."""
    import yaml

    if not name.startswith("AIRFLOW__"):
        return ""
    section, option = name.removeprefix("AIRFLOW__").lower().split("__", 1)
    with (importlib.resources.files("airflow.config_templates") / "config.yml").open() as file:
        description = yaml.safe_load(file)
    return str(description[section]["options"][option]["default"])


def tuned_settings() -> dict[str, str]:
    """The settings below the tuning line of airflow.env: what this benchmark compares."""
    text = settings.SHARED_SETTINGS_FILE.read_text()
    return envfile.parse(text.split(TUNING_MARKER, 1)[1].split("\n", 1)[1], "airflow.env")


def stock_overrides() -> dict[str, str]:
    """The environment that makes ``up`` run with stock settings (the process environment beats airflow.env)."""
    return {
        **{name: airflow_default(name) for name in tuned_settings()},
        "LOCALFLOW_WATCH": "off",
        "LOCALFLOW_PRELOAD": "off",
    }
