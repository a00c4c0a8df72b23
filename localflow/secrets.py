"""The secrets hook: make ``.env`` once, keep it forever, and check what it holds.

One command serves every way of starting the workspace: the native runner, the compose ``airflow-init``
service and the dev container's post-create hook all run ``python -m localflow secrets``. Airflow
processes in containers read the values at start through Airflow's ``*_CMD`` options
(``python -m localflow secrets get NAME``), so nothing depends on Compose having seen ``.env``.

Rules: a value that is set is never changed, so a second run leaves the file byte-identical; the file is
written with mode 0600; no secret is ever printed except by ``get``, whose output Airflow reads.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localflow import envfile, settings
from localflow.errors import LocalflowError

FERNET_KEY = "AIRFLOW__CORE__FERNET_KEY"
JWT_SECRET = "AIRFLOW__API_AUTH__JWT_SECRET"
API_SECRET_KEY = "AIRFLOW__API__SECRET_KEY"
ADMIN_PASSWORD = "LOCALFLOW_ADMIN_PASSWORD"
MIN_JWT_SECRET_BYTES = 64  # shorter HMAC keys make PyJWT warn (InsecureKeyLengthWarning)


def _new_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _check_fernet_key(value: str) -> str | None:
    # Airflow accepts "new,old" during a rotation: every part must be a key on its own.
    for part in value.split(","):
        try:
            raw = base64.urlsafe_b64decode(part.strip().encode())
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            return (
                "is not a valid Fernet key (32 url-safe base64-encoded bytes). Restore the key this database "
                "was created with, or remove the line so a new one is generated (empty database only)."
            )
    return None


def _check_min_length(minimum: int) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if len(value.encode()) < minimum:
            return f"is shorter than {minimum} bytes; remove the line so a new one is generated."
        return None

    return check


@dataclass(frozen=True)
class Secret:
    """A generated secret: how to make one and how to tell a usable value."""

    name: str
    generate: Callable[[], str]
    check: Callable[[str], str | None]


SECRETS = (
    Secret(FERNET_KEY, _new_fernet_key, _check_fernet_key),
    Secret(
        JWT_SECRET,
        lambda: secrets.token_urlsafe(MIN_JWT_SECRET_BYTES),
        _check_min_length(MIN_JWT_SECRET_BYTES),
    ),
    Secret(API_SECRET_KEY, lambda: secrets.token_urlsafe(32), _check_min_length(16)),
    Secret(ADMIN_PASSWORD, lambda: secrets.token_urlsafe(12), _check_min_length(8)),
)


def ensure(
    workspace: Path = settings.WORKSPACE, may_generate: Callable[[str], None] | None = None
) -> list[str]:
    """Create or complete ``.env``; return the names of the secrets generated.

    ``may_generate(name)`` is asked before a secret is made and may raise to forbid it (the key guard
    does, for a Fernet key, when the database already holds data encrypted with another one).
    """
    env_path = workspace / settings.ENV_FILE_NAME
    if env_path.is_symlink() or env_path.exists():
        text = _read(env_path)
        existing = envfile.parse(text, env_path.name)
    else:
        text = _read(workspace / ".env.example")
        existing = {}
    _validate(existing, env_path.name)

    missing = [secret for secret in SECRETS if not existing.get(secret.name)]
    for secret in missing:
        if may_generate:
            may_generate(secret.name)
    values = {secret.name: secret.generate() for secret in missing}
    if not env_path.exists():
        _write_new(env_path, _fill(text, values))
    elif values:
        _replace(env_path, _fill(text, values))
    _restrict_permissions(env_path)
    return list(values)


def load(workspace: Path = settings.WORKSPACE) -> dict[str, str]:
    """The values in ``.env``, validated; a clear error when it is missing or broken."""
    env_path = workspace / settings.ENV_FILE_NAME
    if not env_path.exists():
        raise LocalflowError(f"{env_path} does not exist; run `python -m localflow secrets` to create it.")
    values = envfile.load(env_path)
    _validate(values, env_path.name)
    missing = [secret.name for secret in SECRETS if not values.get(secret.name)]
    if missing:
        raise LocalflowError(
            f"{', '.join(missing)} missing in {env_path.name}; run `python -m localflow secrets`."
        )
    return values


def set_value(workspace: Path, name: str, value: str) -> None:
    """Replace one variable's line in ``.env`` (only on an explicit user command, such as a key rotation)."""
    env_path = workspace / settings.ENV_FILE_NAME
    lines = _read(env_path).splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line.partition("=")[0].strip() == name:
            lines[index] = f"{name}={value}\n"
            break
    else:
        lines.append(f"{name}={value}\n")
    _replace(env_path, "".join(lines))


def write_passwords_file(path: Path, password: str) -> None:
    """Write the SimpleAuthManager passwords file, so the api-server uses our password, not a random one."""
    content = json.dumps({settings.ADMIN_USER: password})
    if path.exists() and path.read_text(encoding="utf-8") == content:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, content)


def _validate(values: dict[str, str], source: str) -> None:
    for secret in SECRETS:
        value = values.get(secret.name)
        if value:
            problem = secret.check(value)
            if problem:
                raise LocalflowError(f"{secret.name} in {source} {problem}")


def _fill(template: str, values: dict[str, str]) -> str:
    """Set each empty ``NAME=`` line of the template; append the names it lacks."""
    lines = template.splitlines(keepends=True)
    pending = dict(values)
    for index, line in enumerate(lines):
        name, sep, value = line.rstrip("\r\n").partition("=")
        if sep and name.strip() in pending and not value.strip():
            newline = line[len(line.rstrip("\r\n")) :] or "\n"
            lines[index] = f"{name.strip()}={pending.pop(name.strip())}{newline}"
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.extend(f"{name}={value}\n" for name, value in pending.items())
    return "".join(lines)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LocalflowError(
            f"{path} is missing; restore it from git (git checkout -- {path.name})."
        ) from None
    except (PermissionError, IsADirectoryError, UnicodeDecodeError) as error:
        raise LocalflowError(
            f"cannot read {path}: {error.__class__.__name__}; check its owner and mode."
        ) from None


def _write_new(path: Path, content: str) -> None:
    # O_EXCL: if another process created the file meanwhile, keep theirs rather than overwrite it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as error:
        raise LocalflowError(f"cannot create {path}: {error.strerror}; is the workspace writable?") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(content)


def _replace(path: Path, content: str) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of either."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(content)
        if path.exists():
            stat = path.stat()
            _chown_like(temporary, stat.st_uid, stat.st_gid)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise LocalflowError(f"cannot write {path}: {error.strerror}; is the workspace writable?") from None


def _chown_like(path: Path, uid: int, gid: int) -> None:
    if hasattr(os, "chown") and os.geteuid() == 0:
        os.chown(path, uid, gid)


def _restrict_permissions(path: Path) -> None:
    if os.name == "posix" and path.stat().st_mode & 0o077:
        try:
            path.chmod(0o600)
        except PermissionError:
            raise LocalflowError(
                f"{path} is readable by others and not ours to chmod; run: chmod 600 {path}"
            ) from None


def main(argv: list[str]) -> int:
    """``secrets`` creates or checks ``.env``; ``secrets get NAME`` prints a value for Airflow's ``*_CMD``."""
    if argv[:1] == ["get"] and len(argv) == 2:
        value = load().get(argv[1])
        if value is None:
            raise LocalflowError(f"{argv[1]} is not set in .env.")
        sys.stdout.write(value)
        return 0
    if argv == ["new-fernet-key"]:
        print(_new_fernet_key())
        return 0
    if argv:
        raise LocalflowError("usage: python -m localflow secrets [get NAME | new-fernet-key]")
    generated = ensure()
    env_path = settings.WORKSPACE / settings.ENV_FILE_NAME
    if generated:
        print(f"{env_path}: generated {', '.join(generated)} (values not shown; the file is mode 0600).")
    else:
        print(f"{env_path}: all secrets present and valid; nothing changed.")
    return 0
