"""In a Codespace the native environment gives Airflow the UI's forwarded address, and nothing else changes.

``[api] base_url`` becomes ``https://<CODESPACE_NAME>-<port>.<domain>`` when both variables are set; an
``AIRFLOW__API__BASE_URL`` of ``.env`` wins; the Execution API stays on the internal address, which
Airflow itself would otherwise derive from ``base_url`` (the public proxy).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from localflow.config import codespaces, settings

NAME, DOMAIN = "fluffy-umbrella-5gq7r", "app.github.dev"
IN_CODESPACE = {codespaces.NAME: NAME, codespaces.DOMAIN: DOMAIN}

# id, the shell's variables, lines of .env, expected [api] base_url (None: unset), expected execution URL
CASES = (
    ("not-a-codespace", {}, "", None, "http://127.0.0.1:8080/execution/"),
    ("codespace", IN_CODESPACE, "", f"https://{NAME}-8080.{DOMAIN}", "http://127.0.0.1:8080/execution/"),
    (
        "codespace-other-port",
        IN_CODESPACE,
        "AIRFLOW__API__PORT=8181\n",
        f"https://{NAME}-8181.{DOMAIN}",
        "http://127.0.0.1:8181/execution/",
    ),
    ("name-only", {codespaces.NAME: NAME}, "", None, "http://127.0.0.1:8080/execution/"),
    (
        "empty-name",
        {codespaces.NAME: "", codespaces.DOMAIN: DOMAIN},
        "",
        None,
        "http://127.0.0.1:8080/execution/",
    ),
    (
        "env-file-base-url-wins",
        IN_CODESPACE,
        "AIRFLOW__API__BASE_URL=https://airflow.example.com\n",
        "https://airflow.example.com",
        "http://127.0.0.1:8080/execution/",
    ),
)


@pytest.mark.parametrize(
    ("shell", "env_file", "base_url", "execution_url"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_base_url_from_the_codespace(tmp_path: Path, shell, env_file, base_url, execution_url):
    """The forwarded address becomes [api] base_url; the Execution API stays on loopback."""
    (tmp_path / ".env").write_text(env_file)
    env = settings.native_environment(tmp_path, base=shell)
    assert env.get(codespaces.BASE_URL) == base_url
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == execution_url
    assert settings.ui_url(env) == (base_url or f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}")


# the environment of a command (a terminal of the dev container: compose's variables, not the entrypoint's)
UI_URLS = (
    ("native", {"AIRFLOW__API__PORT": "8081"}, "http://127.0.0.1:8081"),
    ("container", {"AIRFLOW__API__HOST": "0.0.0.0", "AIRFLOW__API__PORT": "8080"}, "http://127.0.0.1:8080"),
    (
        "container-in-codespace",
        {**IN_CODESPACE, "AIRFLOW__API__HOST": "0.0.0.0", "AIRFLOW__API__PORT": "8080"},
        f"https://{NAME}-8080.{DOMAIN}",
    ),
    (
        "base-url-wins",
        {**IN_CODESPACE, codespaces.BASE_URL: "https://a.example.com"},
        "https://a.example.com",
    ),
)


@pytest.mark.parametrize(("env", "url"), [case[1:] for case in UI_URLS], ids=[case[0] for case in UI_URLS])
def test_ui_url(env: dict[str, str], url: str):
    """Where `up` and `run` send a person: a Codespace's forwarded address also where base_url is unset."""
    assert settings.ui_url(env) == url


def airflows_execution_url(env: dict[str, str]) -> str:
    """The Execution API URL Airflow's executors hand to tasks, as Airflow resolves it."""
    probe = "from airflow.executors.base_executor import get_execution_api_server_url as u; print(u())"
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout.strip().splitlines()[-1]


def test_airflow_would_send_tasks_through_the_proxy_without_our_setting(tmp_path: Path):
    """Airflow derives the Execution API from base_url when unset: why the workspace always sets it."""
    env = settings.native_environment(tmp_path, base={**IN_CODESPACE, "PATH": "/usr/bin:/bin"})
    assert airflows_execution_url(env) == "http://127.0.0.1:8080/execution/"
    del env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert airflows_execution_url(env) == f"https://{NAME}-8080.{DOMAIN}/execution/"
