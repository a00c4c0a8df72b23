"""GitHub Codespaces: the public address its port forwarder gives the UI, derived in one place.

In a Codespace the browser reaches a forwarded port at ``https://<CODESPACE_NAME>-<port>.<domain>``
through a proxy that terminates TLS and rewrites the Host header; Airflow must know that address
(``[api] base_url``) for the links it makes (a task's log URL) and to accept a login link back to it.
Standard library only, no localflow import: the
container's entrypoint (root, before the command) uses it as well as ``settings``. docs/containers.md,
"Codespaces".
"""

from __future__ import annotations

from collections.abc import Mapping

NAME = "CODESPACE_NAME"
DOMAIN = "GITHUB_CODESPACES_PORT_FORWARDING_DOMAIN"
BASE_URL = "AIRFLOW__API__BASE_URL"


def forwarded_url(env: Mapping[str, str], port: str | int) -> str | None:
    """The forwarder's https address of ``port``, or None outside a Codespace (either variable unset)."""
    name, domain = env.get(NAME, "").strip(), env.get(DOMAIN, "").strip().strip(".")
    if not name or not domain:
        return None
    return f"https://{name}-{port}.{domain}"


def base_url(env: Mapping[str, str], port: str | int) -> str | None:
    """The ``[api] base_url`` to use: the one set explicitly (``.env`` wins), else the forwarded address."""
    return env.get(BASE_URL) or forwarded_url(env, port)
