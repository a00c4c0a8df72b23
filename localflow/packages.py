"""Your packages: ``add`` and ``remove`` edit ``requirements-user.in``, lock it against Airflow's pins and
install the lock (docs/packages.md).

The input and its lock (``requirements-user.txt``) are the user's alone: the workspace's locks
(``requirements.txt``, ``-dev``, ``-s3``) are constraints here, never written, so upgrading localflow
rewrites none of the user's lines, and a requirement that would move one of their pins is refused with the
conflict uv found, in a line or two. A refused or interrupted change puts both files back as they were.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from localflow import bootstrap, releases
from localflow.config import settings
from localflow.errors import LocalflowError

# The workspace, not the package's checkout: in the image the package is in /opt/localflow.
INPUT = settings.WORKSPACE / bootstrap.USER_INPUT
LOCK = settings.WORKSPACE / bootstrap.USER_LOCK
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)")
EXAMPLE = "e.g. pandas, pandas==2.2.3, apache-airflow-providers-http>=5"


def requirement(text: str) -> Requirement:
    """``text`` as a requirement (PEP 508), or one line saying it is not one."""
    try:
        parsed = Requirement(text)
    except InvalidRequirement:
        parsed = None
    if parsed is None or parsed.url:
        raise LocalflowError(f"{text!r} is not a package requirement ({EXAMPLE}); nothing was changed.")
    return parsed


def _name_of(line: str) -> str | None:
    """The canonical package name a line of the input requires, or None (a comment, a blank, an option)."""
    text = line.split("#", 1)[0].strip()
    if not text or text.startswith("-"):
        return None
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement:
        return None


def your_packages() -> list[str]:
    """The names the input requires, in its order."""
    if not INPUT.exists():
        return []
    return [name for name in map(_name_of, INPUT.read_text().splitlines()) if name]


def locked(path: Path = LOCK) -> dict[str, set[str]]:
    """Canonical name → the versions a lock file pins for it (one per marker: Python 3.10, 3.11+)."""
    found: dict[str, set[str]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            match = PIN.match(line.strip())
            if match:
                found.setdefault(canonicalize_name(match[1]), set()).add(match[2])
    return found


def conflict(output: str, change: str) -> str:
    """uv's failed resolution as one or two lines: what cannot be had, and the workspace's pin it meets.

    uv says ``cause: Because you require sqlalchemy<1.4 and sqlalchemy==2.1.9, we can conclude ...``;
    the pins it names are looked up in the workspace's locks, so the line says which one holds each.
    """
    lines = output.splitlines()
    if "error sending request" in output:  # no answer from the registry (a proxy, a certificate, offline)
        reason = [line.strip() for line in lines if line.strip().startswith("cause:")][-1:] or ["no answer"]
        return (
            f"{change}: uv could not reach the package registry ({reason[0].removeprefix('cause:').strip()}), "
            "so nothing was changed; behind a proxy with its own certificate, set SSL_CERT_FILE to its "
            "bundle or UV_SYSTEM_CERTS=true."
        )
    cause = next(
        (" ".join(more.strip() for more in lines[index:]) for index, line in enumerate(lines)
         if line.strip().startswith("cause:")),
        "",
    )  # fmt: skip
    first = cause.removeprefix("cause:").split(", we can conclude", 1)[0].strip().removeprefix("Because ")
    first = re.sub(r"\{[^}]*\}", "", first)  # uv's marker of a split: sqlalchemy{python_full_version...}
    if not first:  # not a resolution failure (the registry unreachable, say): uv's own last line
        last = next((line.strip() for line in reversed(lines) if line.strip()), "uv failed")
        return f"{change}: uv could not lock it: {last}. Nothing was changed."
    if "was not found in the package registry" in first:
        missing = first.split(" was not found", 1)[0]
        return f"{change}: no package {missing} in the package registry (PyPI; a typo?); nothing was changed."
    held: dict[str, str] = {}
    for name, version in re.findall(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([0-9][^\s,]*)", first):
        for lock in bootstrap.RELEASE_LOCKS:
            if version in locked(settings.WORKSPACE / lock).get(canonicalize_name(name), ()):
                held.setdefault(f"{name}=={version}", lock)
                break
    if not held:
        return f"{change} cannot be locked, so nothing was changed:\n  {first}."
    pins = ", ".join(f"{pin} ({lock})" for pin, lock in held.items())
    return (
        f"{change} conflicts with the workspace's pins, so nothing was changed:\n"
        f"  {first}; the workspace pins {pins}. Choose a version that fits them, or give none."
    )


def relock(change: str) -> None:
    """Compile the input into the lock in place (uv keeps the pins already there), or raise the conflict
    as one or two lines (``change``: what the user asked for, in words)."""
    result = subprocess.run(
        bootstrap.compile_command(bootstrap.USER_LOCK, bootstrap.USER_LOCK),
        cwd=settings.WORKSPACE,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise LocalflowError(conflict(result.stderr + result.stdout, change))


def _edit(new_input: str, change: str) -> None:
    """Write ``new_input`` and lock it; put both files back as they were if that fails in any way."""
    before = {path: path.read_bytes() if path.exists() else None for path in (INPUT, LOCK)}
    try:
        INPUT.write_text(new_input)
        relock(change)
    except BaseException:
        for path, content in before.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
        raise


def install(env: Mapping[str, str]) -> str:
    """Make the environment hold the lock; return what was done, in words."""
    if settings.IN_CONTAINER:
        return (
            f"the image installs {bootstrap.USER_LOCK} in a layer of its own: rebuild it from the host "
            "(`docker compose up -d --build`, or Dev Containers: Rebuild Container), which redoes that "
            "layer only"
        )
    bootstrap.ensure_venv(bootstrap.lock_files(env), releases.chosen(env))
    return f"{bootstrap.VENV.name} is synced to it"


def add(texts: list[str], env: Mapping[str, str]) -> str:
    """Add (or change) requirements in the input, lock and install; return one line saying what changed."""
    wanted = [requirement(text) for text in texts]
    lines = INPUT.read_text().splitlines() if INPUT.exists() else []
    for new in wanted:
        name = canonicalize_name(new.name)
        at = [index for index, line in enumerate(lines) if _name_of(line) == name]
        if at:
            lines[at[0]] = str(new)
        else:
            lines.append(str(new))
    _edit("\n".join(lines) + "\n", "`add " + " ".join(texts) + "`")
    pins = locked()
    added = ", ".join(
        f"{new.name}=={'/'.join(sorted(pins.get(canonicalize_name(new.name), {'?'})))}" for new in wanted
    )
    return f"{bootstrap.USER_LOCK}: locked {added}; {install(env)}."


def remove(names: list[str], env: Mapping[str, str]) -> str:
    """Take packages out of the input (what only they needed goes too), lock and install."""
    mine = your_packages()
    gone = {canonicalize_name(requirement(name).name) for name in names}
    missing = sorted(gone - set(mine))
    if missing:
        workspace = sorted(name for name in missing if any(name in locked(settings.WORKSPACE / lock)
                                                            for lock in bootstrap.RELEASE_LOCKS))  # fmt: skip
        why = f" ({', '.join(workspace)}: the workspace's own, in pyproject.toml)" if workspace else ""
        raise LocalflowError(
            f"not in {bootstrap.USER_INPUT}: {', '.join(missing)}{why}; yours are: "
            f"{', '.join(mine) or 'none'}. Nothing was changed."
        )
    lines = [line for line in INPUT.read_text().splitlines() if _name_of(line) not in gone]
    _edit("\n".join(lines) + "\n", "`remove " + " ".join(names) + "`")
    return f"{bootstrap.USER_LOCK}: removed {', '.join(sorted(gone))}; {install(env)}."


def main(action: str, texts: list[str], env: Mapping[str, str]) -> int:
    """``add`` or ``remove`` on the command line: one line of what changed."""
    print(f"localflow: {(add if action == 'add' else remove)(texts, env)}", flush=True)
    return 0
