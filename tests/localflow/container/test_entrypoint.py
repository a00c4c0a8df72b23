"""The image's entrypoint: the settings for a container behind a forwarder (``[api] base_url`` in a
Codespace, derived as natively, and the one peer whose proxy headers the api-server honours: the network's
gateway), and the one line of .env that switches compose's Airflow services to Celery.
"""

from __future__ import annotations

import pytest

from localflow.container.entrypoint import choose_executor, default_gateway, proxy_settings

# /proc/net/route of a container on a compose network whose gateway is 172.18.0.1.
ROUTES = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""
NO_DEFAULT_ROUTE = ROUTES.splitlines()[0] + "\n" + ROUTES.splitlines()[2] + "\n"
CODESPACE = {
    "CODESPACE_NAME": "fluffy-umbrella-5gq7r",
    "GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN": "app.github.dev",
}
PUBLIC = "https://fluffy-umbrella-5gq7r-8080.app.github.dev"

# id, the container's environment (compose's), its routes, what the entrypoint adds
CASES = (
    (
        "not-a-codespace",
        {"CODESPACE_NAME": "", "AIRFLOW__API__PORT": "8080"},
        ROUTES,
        {"FORWARDED_ALLOW_IPS": "172.18.0.1"},
    ),
    (
        "codespace",
        {**CODESPACE, "AIRFLOW__API__PORT": "8080"},
        ROUTES,
        {"AIRFLOW__API__BASE_URL": PUBLIC, "FORWARDED_ALLOW_IPS": "172.18.0.1"},
    ),
    (
        "env-file-wins",
        {**CODESPACE, "AIRFLOW__API__BASE_URL": "https://mine.example", "FORWARDED_ALLOW_IPS": "10.0.0.2"},
        ROUTES,
        {},
    ),
    ("no-default-route", {**CODESPACE}, NO_DEFAULT_ROUTE, {"AIRFLOW__API__BASE_URL": PUBLIC}),
    ("no-route-table", {}, "", {}),
)


@pytest.mark.parametrize(
    ("env", "routes", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_proxy_settings(env, routes, expected):
    """Set only what compose and .env leave unset."""
    assert proxy_settings(env, routes) == expected


def test_default_gateway_reads_this_machines_table():
    """The table format is the kernel's: on this machine too the default route has a gateway or none."""
    with open("/proc/net/route") as table:
        gateway = default_gateway(table.read())
    assert gateway is None or all(part.isdigit() and int(part) < 256 for part in gateway.split("."))


AIRFLOW_ENV = "localflow.stack.executor.LocalExecutor"  # what airflow.env sets

# COMPOSE_PROFILES (None: unset), the executor every Airflow service then runs
EXECUTOR_CASES = [
    (None, AIRFLOW_ENV),
    ("", AIRFLOW_ENV),
    ("celery", "CeleryExecutor"),
    ("celery,flower", "CeleryExecutor"),
    (" flower , celery ", "CeleryExecutor"),
    ("flower", AIRFLOW_ENV),
    ("celeryx", AIRFLOW_ENV),
]


@pytest.mark.parametrize(("profiles", "executor"), EXECUTOR_CASES)
def test_the_celery_profile_chooses_the_celery_executor(profiles: str | None, executor: str):
    """It sets the CeleryExecutor when the ``celery`` profile is on, and leaves airflow.env's otherwise."""
    environ = {"AIRFLOW__CORE__EXECUTOR": AIRFLOW_ENV}
    if profiles is not None:
        environ["COMPOSE_PROFILES"] = profiles
    choose_executor(environ)
    assert environ["AIRFLOW__CORE__EXECUTOR"] == executor
