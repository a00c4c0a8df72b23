"""Container entrypoint: run the command as the owner of the bind-mounted workspace.

Files the stack writes into the workspace (``.env``, task logs) must belong to the person who cloned it,
not to a container user whose UID means nothing on the host: a 0600 ``.env`` owned by UID 50000 is one
the host user cannot read. Compose starts Airflow services as root only for this step; the command then
runs unprivileged with the workspace owner's UID (or the image's ``airflow`` user when the workspace is
owned by root, as on Docker Desktop's file sharing). The same pattern as the official postgres image.
"""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path

DEFAULT_USER = "airflow"
# `COMPOSE_PROFILES=celery` in .env starts Redis and the workers (compose) and switches every Airflow
# service to the CeleryExecutor (here): one line. The native stack reads it in localflow.settings.
CELERY_PROFILE = "celery"


def choose_executor(environ: dict) -> None:
    """Airflow's CeleryExecutor when the ``celery`` profile is on; else airflow.env's executor."""
    if CELERY_PROFILE in {name.strip() for name in environ.get("COMPOSE_PROFILES", "").split(",")}:
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


def main(argv: list[str]) -> None:
    """Drop privileges when started as root, then exec the command."""
    if not argv:
        sys.exit("entrypoint: no command given")
    choose_executor(os.environ)
    if os.geteuid() == 0:
        drop_privileges(
            Path(os.environ.get("LOCALFLOW_WORKSPACE", "/workspaces/localflow")),
            Path(os.environ.get("AIRFLOW_HOME", "/opt/airflow")),
        )
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
