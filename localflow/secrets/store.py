"""The workspace's ``.env``: made once from ``.env.example``, kept forever, checked on every read.

Rules: a value that is set is never changed, so a second run leaves the file byte-identical; the file is
written with mode 0600; no secret is ever printed (``hook.py``'s ``get`` is the one exception, for
Airflow's ``*_CMD`` options).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from localflow.config import envfile, settings
from localflow.errors import LocalflowError
from localflow.secrets import files
from localflow.secrets.rules import SECRETS, validate


def ensure(
    workspace: Path = settings.WORKSPACE, may_generate: Callable[[str], None] | None = None
) -> list[str]:
    """Create or complete ``.env``; return the names of the secrets generated.

    ``may_generate(name)`` is asked before a secret is made and may raise to forbid it (the key guard
    does, for a Fernet key, when the database already holds data encrypted with another one).
    """
    env_path = workspace / settings.ENV_FILE_NAME
    exists = env_path.is_symlink() or env_path.exists()
    if exists:
        if not env_path.exists():
            files.read(env_path)  # a link to nothing: its own clear line
        existing = envfile.load(env_path)  # the values this command already read, unless the file changed
        template = None
    else:
        existing, template = {}, files.read(workspace / ".env.example")  # missing: said before anything
    validate(existing, env_path.name)

    missing = [secret for secret in SECRETS if not existing.get(secret.name)]
    for secret in missing:
        if may_generate:
            may_generate(secret.name)
    values = {secret.name: secret.generate() for secret in missing}
    text = template if template is not None else files.read(env_path) if values else ""
    if not env_path.exists():
        files.write_new(env_path, _fill(text, values))
    elif values:
        files.replace(env_path, _fill(text, values))
    files.restrict_permissions(env_path)
    return list(values)


def load(workspace: Path = settings.WORKSPACE) -> dict[str, str]:
    """The values in ``.env``, validated; a clear error when it is missing or broken."""
    env_path = workspace / settings.ENV_FILE_NAME
    if not env_path.exists():
        raise LocalflowError(f"{env_path} does not exist; run `python -m localflow secrets` to create it.")
    values = envfile.load(env_path)
    validate(values, env_path.name)
    missing = [secret.name for secret in SECRETS if not values.get(secret.name)]
    if missing:
        raise LocalflowError(
            f"{', '.join(missing)} missing in {env_path.name}; run `python -m localflow secrets`."
        )
    return values


def set_value(workspace: Path, name: str, value: str) -> None:
    """Replace one variable's line in ``.env`` (only on an explicit user command, such as a key rotation)."""
    env_path = workspace / settings.ENV_FILE_NAME
    files.replace(env_path, envfile.set_values(files.read(env_path), {name: value}, env_path.name))


def _fill(template: str, values: dict[str, str]) -> str:
    """Set each empty ``NAME=`` line of the template; append the names it lacks."""
    return envfile.set_values(template, values, settings.ENV_FILE_NAME, only_empty=True)
