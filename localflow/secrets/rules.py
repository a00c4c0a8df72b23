"""What each generated secret is: its name, how to make one, and how to tell a usable value.

The values live in ``.env`` (``store.py``); these rules are shared by the secrets hook, ``up``, the key
guard and the tests.
"""

from __future__ import annotations

import base64
import binascii
import secrets as stdlib_secrets
from collections.abc import Callable
from dataclasses import dataclass

from localflow.errors import LocalflowError

FERNET_KEY = "AIRFLOW__CORE__FERNET_KEY"
JWT_SECRET = "AIRFLOW__API_AUTH__JWT_SECRET"
API_SECRET_KEY = "AIRFLOW__API__SECRET_KEY"
ADMIN_PASSWORD = "LOCALFLOW_ADMIN_PASSWORD"
MIN_JWT_SECRET_BYTES = 64  # shorter HMAC keys make PyJWT warn (InsecureKeyLengthWarning)


def new_fernet_key() -> str:
    """A new random Fernet key (what ``secrets new-fernet-key`` prints)."""
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
    Secret(FERNET_KEY, new_fernet_key, _check_fernet_key),
    Secret(
        JWT_SECRET,
        lambda: stdlib_secrets.token_urlsafe(MIN_JWT_SECRET_BYTES),
        _check_min_length(MIN_JWT_SECRET_BYTES),
    ),
    Secret(API_SECRET_KEY, lambda: stdlib_secrets.token_urlsafe(32), _check_min_length(16)),
    Secret(ADMIN_PASSWORD, lambda: stdlib_secrets.token_urlsafe(12), _check_min_length(8)),
)


def validate(values: dict[str, str], source: str) -> None:
    """Raise one clear line for the first secret in ``values`` that is set but unusable."""
    for secret in SECRETS:
        value = values.get(secret.name)
        if value:
            problem = secret.check(value)
            if problem:
                raise LocalflowError(f"{secret.name} in {source} {problem}")
