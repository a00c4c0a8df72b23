"""The native stack in a Codespace, reached only through a stand-in for its port forwarder.

With ``CODESPACE_NAME`` and ``GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN`` set, ``up`` gives the api-server
the forwarded https address as ``[api] base_url``. A headless Chromium opens the UI at that address
through a TLS-terminating proxy on loopback that rewrites the Host header (``testkit/forwarder.py``): the
login works, every page and redirect stays on the forwarded address, the session cookie is Secure, and a
DAG triggered there succeeds while its tasks never go through the proxy. The links Airflow makes
itself (a task's log URL, a login's absolute ``next``) are on the forwarded address too. The api-server
honours ``X-Forwarded-Proto`` from loopback, where the forwarder connects from, and from nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from localflow.config import codespaces
from testkit.browser import chromium
from testkit.forwarder import CODESPACE, LOG_URL_DAG, Forwarder, forwarder, log_in_and_trigger
from testkit.native_stack import RunningStack, running_stack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def codespace(tmp_path_factory) -> Iterator[tuple[RunningStack, Forwarder, Path]]:
    """A native stack started with the Codespaces variables, its forwarder, and a folder for artifacts."""
    root = tmp_path_factory.mktemp("codespace")
    workspace = root / "workspace"
    workspace.mkdir()
    with running_stack(workspace, None, **CODESPACE) as stack:
        (workspace / "dags" / "log_url.py").write_text(LOG_URL_DAG)
        port = int(stack.env["AIRFLOW__API__PORT"])
        public_url = codespaces.forwarded_url(CODESPACE, port)
        with forwarder(public_url, port, root) as proxy:
            yield stack, proxy, root


def test_up_prints_the_forwarded_address(codespace):
    """``up`` tells the user to open the forwarded address, not the loopback one they cannot reach."""
    stack, proxy, _ = codespace
    assert f"Airflow is up: {proxy.public_url}\n" in stack.output()


def test_log_in_and_run_a_dag_through_the_forwarder(codespace):
    """Login, redirects and cookies work behind the forwarder, and tasks stay on the internal address."""
    stack, proxy, root = codespace
    with stack.output_on_timeout():
        stack.api.wait_for_dags(["example_etl"])
    with chromium(root, proxy.chromium_arguments()) as browser:
        run_id, landed = log_in_and_trigger(browser, proxy, stack.admin_password, "example_etl")
        token = next(cookie for cookie in browser.driver.get_cookies() if cookie["name"] == "_token")
        assert token["secure"], token

    assert landed[0].startswith(f"{proxy.public_url}/auth/login?next="), landed
    assert landed[1] == f"{proxy.public_url}/dags/example_etl", landed
    assert all(url.startswith(proxy.public_url + "/") for url in landed), landed
    assert any(seen.location for seen in proxy.seen), "no redirect went through the forwarder"
    assert not proxy.redirects_off_the_public_address(), proxy.redirects_off_the_public_address()
    # The tasks talked to the Execution API on 127.0.0.1, never through the public proxy.
    assert not [seen for seen in proxy.seen if seen.path.startswith("/execution")]
    status, run = stack.api.request("GET", f"/api/v2/dags/example_etl/dagRuns/{run_id}")
    assert status == 200, run
    assert run["state"] == "success", run


def test_a_tasks_log_link_opens_on_the_forwarded_address(codespace):
    """The log URL a task gets (what a failure notification links to) is the forwarded one, and opens."""
    stack, proxy, root = codespace
    run_id = stack.trigger("log_url")
    assert stack.wait_for_run("log_url", run_id) == "success"
    xcom = stack.api.get(f"/api/v2/dags/log_url/dagRuns/{run_id}/taskInstances/link/xcomEntries/return_value")
    link = xcom["value"]
    assert link.startswith(f"{proxy.public_url}/dags/log_url/runs/"), link
    with chromium(root, proxy.chromium_arguments()) as browser:
        browser.open(link)
        browser.wait_for("//*[normalize-space()='Sign into Airflow']", "the login page")
        browser.log_in("admin", stack.admin_password)
        browser.wait_for("//*[normalize-space()='link']", "the page of the task `link`")
        assert browser.url.startswith(f"{proxy.public_url}/dags/log_url/runs/"), browser.url


# (where `next` points, whether the api-server sends the browser on to the login page with it)
NEXT_URLS = (
    ("{public}/dags/example_etl", True),  # an absolute link on the forwarded address
    ("/dags/example_etl", True),
    ("https://evil.example/dags/example_etl", False),
    ("http://localhost:{port}/dags/example_etl", True),  # the Host the forwarder sends: the request's own
)


@pytest.mark.parametrize(("target", "accepted"), NEXT_URLS)
def test_login_accepts_next_on_the_forwarded_address(codespace, target: str, accepted: bool):
    """A login link that returns to the forwarded address is followed; one to another site is refused."""
    stack, proxy, _ = codespace
    target = target.format(public=proxy.public_url, port=proxy.upstream_port)
    response = httpx.get(
        f"{stack.url}/api/v2/auth/login?next={quote(target, safe='')}",
        headers={"Host": f"localhost:{proxy.upstream_port}", "X-Forwarded-Proto": "https"},
        timeout=30,
    )
    if accepted:
        assert response.status_code == 307, response.text
        assert response.headers["location"] == f"/auth/login?next={quote(target, safe='')}"
    else:
        assert response.status_code == 400, response.text


# (source address of the request, whether its forged X-Forwarded-Proto: https counts)
PEERS = (
    ("127.0.0.1", True),  # loopback: where the forwarder connects from
    ("127.0.0.2", False),  # another address (the api-server listens on 127.0.0.1 only, so also loopback)
)


@pytest.mark.parametrize(("source", "honoured"), PEERS)
def test_proxy_headers_count_only_from_the_forwarder(codespace, source: str, honoured: bool):
    """The cookie the logout clears is Secure only when the api-server believes the request came by https."""
    stack, _, _ = codespace
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=30) as client:
        response = client.get(
            f"{stack.url}/api/v2/auth/logout",
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"},
        )
    assert response.status_code == 307, response.text
    cookies = response.headers.get_list("set-cookie")
    assert cookies, response.headers
    assert all(("; secure" in cookie.lower()) is honoured for cookie in cookies), cookies
