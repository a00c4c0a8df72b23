"""A stand-in for GitHub Codespaces' port forwarder, on loopback, for the tests of the UI behind it.

Like the forwarder, it terminates TLS for ``https://<codespace>-<port>.<domain>`` (a throwaway
self-signed certificate), passes each request on to the api-server with the Host header rewritten to
``localhost:<port>`` and ``X-Forwarded-Proto/-Host/-For`` set, and streams the answer back unchanged. It
listens on 127.0.0.1 only; Chromium reaches it under the public name through ``chromium_arguments``. It
logs every request it forwards, so a test can show that no task went through it. ``log_in_and_trigger``
is what a user then does there, shared by the native and the compose test.
"""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from localflow.polling import wait_until
from testkit.browser import Browser
from testkit.environment import free_port

# Per connection, not end to end: a proxy never passes these on (RFC 9110, section 7.6.1).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)


@dataclass(frozen=True)
class Forwarded:
    """One request the forwarder passed on, and the answer's status and ``Location`` (or None)."""

    method: str
    path: str
    status: int
    location: str | None


@dataclass
class Forwarder:
    """The forwarder of ``public_url`` to the api-server at ``upstream_port``; ``port`` is where it listens."""

    public_url: str
    upstream_port: int
    port: int
    seen: list[Forwarded] = field(default_factory=list)

    @property
    def public_host(self) -> str:
        """The host name of the public address."""
        return urlsplit(self.public_url).hostname or ""

    def chromium_arguments(self) -> tuple[str, ...]:
        """Chromium sends the public name to this forwarder and accepts its throwaway certificate."""
        return (
            f"--host-resolver-rules=MAP {self.public_host} 127.0.0.1:{self.port}",
            "--ignore-certificate-errors",
        )

    def redirects_off_the_public_address(self) -> list[Forwarded]:
        """The answers whose ``Location`` leads anywhere but the public address."""
        return [
            seen
            for seen in self.seen
            if seen.location is not None
            and not urljoin(self.public_url + seen.path, seen.location).startswith(self.public_url + "/")
        ]

    async def __call__(self, scope, receive, send) -> None:
        """ASGI: forward one HTTP request (uvicorn gives this app the lifespan events too, answered here)."""
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope["headers"]
            if name.decode("latin-1") not in HOP_BY_HOP | {"host"}
        ]
        headers += [
            ("host", f"localhost:{self.upstream_port}"),
            ("x-forwarded-host", self.public_host),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", scope["client"][0]),
        ]
        path = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            path += "?" + scope["query_string"].decode("latin-1")
        async with httpx.AsyncClient(timeout=60) as client:
            request = client.build_request(
                scope["method"], f"http://127.0.0.1:{self.upstream_port}{path}", headers=headers, content=body
            )
            response = await client.send(request, stream=True)
            try:
                self.seen.append(
                    Forwarded(scope["method"], path, response.status_code, response.headers.get("location"))
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status_code,
                        "headers": [
                            (name, value)
                            for name, value in response.headers.raw
                            if name.decode("latin-1").lower() not in HOP_BY_HOP
                        ],
                    }
                )
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            finally:
                await response.aclose()


def self_signed_certificate(host: str, folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for ``host`` and its key, written to ``folder``: (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = folder / "forwarder.crt", folder / "forwarder.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certificate_path, key_path


@contextmanager
def forwarder(public_url: str, upstream_port: int, folder: Path) -> Iterator[Forwarder]:
    """The forwarder of ``public_url`` to 127.0.0.1:``upstream_port``, serving for the block (a thread)."""
    proxy = Forwarder(public_url, upstream_port, free_port())
    certificate, key = self_signed_certificate(proxy.public_host, folder)
    config = uvicorn.Config(
        proxy,
        host="127.0.0.1",
        port=proxy.port,
        ssl_certfile=str(certificate),
        ssl_keyfile=str(key),
        log_level="warning",
        proxy_headers=False,  # it is the proxy: it sets these headers, it does not read them
        lifespan="on",
        loop="asyncio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), name="forwarder", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 30, interval=0.1, what="the forwarder listening")
        yield proxy
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# The variables a Codespace sets (the public address is derived from them: localflow/config/codespaces.py).
CODESPACE = {
    "CODESPACE_NAME": "fluffy-umbrella-5gq7r",
    "GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN": "app.github.dev",
}
# A task that returns the link to its own log, as Airflow puts it in notifications ({{ ti.log_url }}).
LOG_URL_DAG = '''"""Generated DAG log_url: returns the link to its own log, as notifications show it."""

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["generated"])
def log_url():
    @task
    def link(ti=None) -> str:
        return ti.log_url

    link()


log_url()
'''


def log_in_and_trigger(
    browser: Browser, proxy: Forwarder, password: str, dag_id: str
) -> tuple[str, list[str]]:
    """Open ``dag_id``'s page at the public address, log in as admin, trigger it with the UI's button and
    wait until the page shows the run succeed; return the run id and each address the browser was at."""
    landed: list[str] = []
    # Not logged in: the UI sends the browser to the login page, then back to the page asked for.
    browser.open(f"{proxy.public_url}/dags/{dag_id}")
    browser.wait_for("//*[normalize-space()='Sign into Airflow']", "the login page")
    landed.append(browser.url)
    browser.log_in("admin", password)
    browser.wait_for("//button[@aria-label='Trigger Dag']", f"the DAG page of {dag_id}")
    landed.append(browser.url)
    run_id = browser.trigger_and_wait(dag_id)
    landed.append(browser.url)
    return run_id, landed
