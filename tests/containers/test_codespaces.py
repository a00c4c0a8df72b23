"""``docker compose up`` in a Codespace, reached only through a stand-in for its port forwarder.

With ``CODESPACE_NAME`` and ``GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN`` in the user's shell, compose
passes them to every Airflow service, whose entrypoint derives ``[api] base_url`` from them as the native
runner does. Behind a TLS-terminating proxy on loopback in front of the published port (as
``testkit/forwarder.py`` stands in for the forwarder), a headless Chromium logs in and a DAG triggered in
the UI succeeds, every page and redirect on the forwarded address, no task through the proxy. The
api-server honours ``X-Forwarded-Proto`` from the network's gateway (the published port) and not from
another container.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testkit.browser import chromium
from testkit.containers import DesktopUser, Engine, Stack, stack_on_fresh_copy
from testkit.forwarder import CODESPACE, LOG_URL_DAG, Forwarder, forwarder, log_in_and_trigger

pytestmark = pytest.mark.containers

# devcontainer.json forwards the api-server's container port, 8080, whatever port compose publishes.
PUBLIC_URL = "https://fluffy-umbrella-5gq7r-8080.app.github.dev"
# Asks the api-server for a logout with a forged X-Forwarded-Proto; prints each Set-Cookie it answers.
FORGED_LOGOUT = (
    "import http.client; c = http.client.HTTPConnection('airflow-api-server', 8080, timeout=30); "
    "c.request('GET', '/api/v2/auth/logout', headers={'X-Forwarded-Proto': 'https'}); "
    "r = c.getresponse(); print(r.status); [print(v) for k, v in r.getheaders() if k.lower() == 'set-cookie']"
)


@pytest.fixture(scope="module")
def codespace(engine: Engine, desktop_user: DesktopUser, base_dir: Path) -> Iterator[tuple[Stack, Forwarder]]:
    """A fresh copy started with ``docker compose up --wait`` in a Codespace's shell, and its forwarder."""
    with stack_on_fresh_copy(engine, desktop_user, base_dir, "codespaces", **CODESPACE) as stack:
        stack.up_output = stack.compose("up", "--wait", "--wait-timeout", "300", timeout=900).stderr
        (stack.workspace / "dags" / "log_url.py").write_text(LOG_URL_DAG)
        with forwarder(PUBLIC_URL, stack.port, base_dir / "codespaces") as proxy:
            yield stack, proxy


def test_log_in_and_run_a_dag_through_the_forwarder(codespace, base_dir: Path):
    """Login, redirects and cookies work behind the forwarder; tasks use the internal Execution API."""
    stack, proxy = codespace
    stack.wait_for_dags(("example_etl",))
    with chromium(base_dir / "codespaces", proxy.chromium_arguments()) as browser:
        run_id, landed = log_in_and_trigger(browser, proxy, stack.admin_password(), "example_etl")
    assert landed[0].startswith(f"{PUBLIC_URL}/auth/login?next="), landed
    assert all(url.startswith(PUBLIC_URL + "/") for url in landed), landed
    assert not proxy.redirects_off_the_public_address(), proxy.redirects_off_the_public_address()
    assert not [seen for seen in proxy.seen if seen.path.startswith("/execution")]
    assert stack.wait_for_run("example_etl", run_id)["state"] == "success"


def test_a_tasks_log_link_is_on_the_forwarded_address(codespace):
    """The entrypoint gave the scheduler's tasks the forwarded address as [api] base_url."""
    stack, _ = codespace
    stack.wait_for_dags(("log_url",))
    run = stack.run_dag("log_url")
    assert run["state"] == "success", run
    status, xcom = stack.request(
        "GET", f"/api/v2/dags/log_url/dagRuns/{run['dag_run_id']}/taskInstances/link/xcomEntries/return_value"
    )
    assert status == 200, xcom
    assert xcom["value"].startswith(f"{PUBLIC_URL}/dags/log_url/runs/"), xcom


def test_proxy_headers_count_from_the_published_port(codespace):
    """From the host (the published port: the gateway) a forwarded https counts: the cleared cookie is Secure."""
    stack, _ = codespace
    response = httpx.get(
        f"http://127.0.0.1:{stack.port}/api/v2/auth/logout",
        headers={"X-Forwarded-Proto": "https"},
        timeout=30,
    )
    assert response.status_code == 307, response.text
    cookies = response.headers.get_list("set-cookie")
    assert cookies and all("; secure" in cookie.lower() for cookie in cookies), cookies


def test_proxy_headers_do_not_count_from_another_container(codespace):
    """A forged X-Forwarded-Proto from another container on the network is ignored: no Secure cookie."""
    stack, _ = codespace
    result = stack.compose("exec", "-T", "airflow-scheduler", "python", "-c", FORGED_LOGOUT, timeout=120)
    status, *cookies = result.stdout.split("\n")
    cookies = [cookie for cookie in cookies if cookie]
    assert status == "307", result.stdout
    assert cookies and not any("; secure" in cookie.lower() for cookie in cookies), cookies
