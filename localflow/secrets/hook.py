"""The secrets hook: ``python -m localflow secrets`` makes or checks ``.env`` (and makes ``airflow_settings.yaml``
from its example); ``get NAME`` prints one value.

One command serves every way of starting the workspace: the native runner, the compose ``airflow-init``
service and the dev container's post-create hook all run it. Airflow processes in containers read the
values at start through Airflow's ``*_CMD`` options (``python -m localflow secrets get NAME``), so nothing
depends on Compose having seen ``.env``.
"""

from __future__ import annotations

import os
import sys

from localflow.config import settings
from localflow.errors import LocalflowError
from localflow.secrets import store
from localflow.secrets.rules import new_fernet_key


def main(argv: list[str], env: dict[str, str]) -> int:
    """``secrets`` creates or checks ``.env``; ``secrets get NAME`` prints a value for Airflow's ``*_CMD``."""
    if argv[:1] == ["get"] and len(argv) == 2:
        value = store.load().get(argv[1])
        if value is None:
            raise LocalflowError(f"{argv[1]} is not set in .env.")
        # Bare for Airflow's *_CMD options, which keep a trailing newline as part of the value; on a
        # terminal the line ends, so the prompt does not run on after the value.
        sys.stdout.write(value + ("\n" if sys.stdout.isatty() else ""))
        return 0
    if argv == ["new-fernet-key"]:
        print(new_fernet_key())
        return 0
    if argv:
        raise LocalflowError("usage: python -m localflow secrets [get NAME | new-fernet-key]")
    # The key guard runs here too: a new Fernet key over encrypted data would make it unreadable.
    from localflow.secrets.prepare import ensure_secrets

    settings_path = settings.WORKSPACE / settings.SETTINGS_FILE_NAME
    had_settings = os.path.lexists(settings_path)
    generated = ensure_secrets(settings.WORKSPACE, env)
    if not had_settings and settings_path.exists():
        print(
            f"{settings_path}: made from {settings.SETTINGS_EXAMPLE_NAME}; put your connections and variables there."
        )
    env_path = settings.WORKSPACE / settings.ENV_FILE_NAME
    if generated:
        print(f"{env_path}: generated {', '.join(generated)} (values not shown; the file is mode 0600).")
    else:
        print(f"{env_path}: all secrets present and valid; nothing changed.")
    return 0
