"""Writing a workspace file that may hold a secret: never half-written, never readable by others.

``.env`` and the admin passwords file go through here. A file that exists keeps its owner; a new one is
made with mode 0600 and never replaces one another process created meanwhile.
"""

from __future__ import annotations

import os
from pathlib import Path

from localflow.errors import LocalflowError


def read(path: Path) -> str:
    """The file's text; one clear line when it is missing or unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if path.is_symlink():  # a dotfiles manager's link whose target moved
            raise LocalflowError(
                f"{path} links to {os.readlink(path)}, which does not exist; restore that file, "
                f"or remove the link (rm {path}) to have a new one made."
            ) from None
        raise LocalflowError(
            f"{path} is missing; restore it from git (git checkout -- {path.name})."
        ) from None
    except (PermissionError, IsADirectoryError, UnicodeDecodeError) as error:
        raise LocalflowError(
            f"cannot read {path}: {error.__class__.__name__}; check its owner and mode."
        ) from None


def write_new(path: Path, content: str) -> None:
    """Create ``path`` with mode 0600, unless another process created it meanwhile."""
    # O_EXCL: if another process created the file meanwhile, keep theirs rather than overwrite it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as error:
        raise LocalflowError(f"cannot create {path}: {error.strerror}; is the workspace writable?") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(content)


def replace(path: Path, content: str) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of either.

    A symbolic link is written through: its target gets the content and the link stays.
    """
    path = path.resolve() if path.is_symlink() else path
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


def restrict_permissions(path: Path) -> None:
    """Make ``path`` readable by its owner only."""
    if os.name == "posix" and path.stat().st_mode & 0o077:
        try:
            path.chmod(0o600)
        except PermissionError:
            raise LocalflowError(
                f"{path} is readable by others and not ours to chmod; run: chmod 600 {path}"
            ) from None
