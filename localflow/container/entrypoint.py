"""Container entrypoint: run the command as the owner of the bind-mounted workspace.

Files the stack writes into the workspace (``.env``, task logs) must belong to the person who cloned it,
not to a container user whose UID means nothing on the host: a 0600 ``.env`` owned by UID 50000 is one
the host user cannot read. Compose starts Airflow services as root only for this step; the command then
runs unprivileged with the workspace owner's UID (or the image's ``airflow`` user when the workspace is
owned by root, as on Docker Desktop's file sharing). The same pattern as the official postgres image.

In a Codespace it also gives every service the UI's forwarded address as ``[api] base_url``, derived as
natively (``localflow.config.codespaces``, standard library only), and tells the api-server whose proxy headers to
honour: the network's gateway, where connections to the published port come from (docs/containers.md).
"""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Mapping
from pathlib import Path

from localflow.config import codespaces, registry

DEFAULT_USER = "airflow"


def choose_executor(environ: dict) -> None:
    """Airflow's CeleryExecutor when the ``celery`` profile is on; else airflow.env's executor.

    `COMPOSE_PROFILES=celery` in .env starts Redis and the workers (compose) and switches every Airflow
    service to the CeleryExecutor (here): one line. The native stack does the same in config.settings.
    """
    if registry.CELERY_PROFILE in registry.profiles(environ):
        environ["AIRFLOW__CORE__EXECUTOR"] = "CeleryExecutor"


def target_ids(workspace: Path) -> tuple[int, int]:
    """UID and GID to run as: the workspace's owner, unless that is root."""
    stat = workspace.stat()
    if stat.st_uid != 0:
        return stat.st_uid, stat.st_gid
    user = pwd.getpwnam(DEFAULT_USER)
    return user.pw_uid, user.pw_gid


def drop_privileges(workspace: Path, home: Path) -> None:
    """Become the target user; give it the Airflow home directory of this container."""
    uid, gid = target_ids(workspace)
    home.mkdir(parents=True, exist_ok=True)
    for path in (home, *home.rglob("*")):
        os.lchown(path, uid, gid)
    os.setgroups([0])  # keeps group-0 access to image directories, like the official Airflow image
    os.setgid(gid)
    os.setuid(uid)
    os.environ["HOME"] = str(home)
    os.environ["USER"] = pwd.getpwuid(uid).pw_name if _has_user(uid) else DEFAULT_USER


def _has_user(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def default_gateway(route_table: str) -> str | None:
    """The default route's gateway in ``/proc/net/route`` (hex, little-endian), or None without one."""
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000" and fields[2] != "00000000":
            return ".".join(str(int(fields[2][i : i + 2], 16)) for i in (6, 4, 2, 0))
    return None


def proxy_settings(env: Mapping[str, str], route_table: str) -> dict[str, str]:
    """What the container's Airflow needs behind a forwarder: ``[api] base_url`` in a Codespace (the
    container port, 8080, is the one devcontainer.json forwards), and the one peer whose X-Forwarded-*
    headers the api-server honours. Values already set (compose, ``.env``) win."""
    found: dict[str, str] = {}
    url = codespaces.forwarded_url(env, env.get("AIRFLOW__API__PORT", "8080"))
    if url and not env.get(codespaces.BASE_URL):
        found[codespaces.BASE_URL] = url
    gateway = default_gateway(route_table)
    if gateway and not env.get("FORWARDED_ALLOW_IPS"):
        found["FORWARDED_ALLOW_IPS"] = gateway
    return found


def main(argv: list[str]) -> None:
    """Drop privileges when started as root, then exec the command."""
    if not argv:
        sys.exit("entrypoint: no command given")
    route = Path("/proc/net/route")
    os.environ.update(proxy_settings(os.environ, route.read_text() if route.exists() else ""))
    choose_executor(os.environ)
    if os.geteuid() == 0:
        drop_privileges(
            Path(os.environ.get("LOCALFLOW_WORKSPACE", "/workspaces/localflow")),
            Path(os.environ.get("AIRFLOW_HOME", "/opt/airflow")),
        )
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
