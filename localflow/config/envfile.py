"""Strict reading of ``.env`` files, in the KEY=VALUE syntax Docker Compose accepts, and setting a line.

python-dotenv (which Airflow already depends on) does the parsing; unlike its ``dotenv_values``, a line it
cannot parse is an error here, because a silently dropped line can be a lost secret. ``set_values`` finds
the line to change with the same parser, so reading and writing agree on what a line is.
"""

from __future__ import annotations

import io
from pathlib import Path

from dotenv.parser import parse_stream

from localflow.errors import LocalflowError


def parse(text: str, source: str) -> dict[str, str]:
    """Return the variables in ``text``; raise on the first line that is not ``KEY=VALUE``."""
    values: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for binding in parse_stream(io.StringIO(text)):
        # A bare NAME would mean "inherit from the environment" to Compose; in our files it is a mistake.
        if binding.error or (binding.key is not None and binding.value is None):
            # Never echo the line: it may hold a secret.
            raise LocalflowError(
                f"{source}, line {_line_number(binding)}: not a KEY=VALUE line; "
                "fix or remove it (comments start with #)."
            )
        if binding.key is not None:
            line = _line_number(binding)
            if binding.key in values:
                # Compose keeps the last, silently; with two keys or passwords one would be lost unseen.
                raise LocalflowError(
                    f"{source}, line {line}: {binding.key} is set again (first on line "
                    f"{first_line[binding.key]}); keep one of the two lines."
                )
            first_line[binding.key] = line
            values[binding.key] = binding.value or ""
    return values


def _line_number(binding) -> int:
    """The line the binding's own text starts on (python-dotenv counts the blank lines before it in)."""
    original = binding.original.string
    return binding.original.line + original[: len(original) - len(original.lstrip())].count("\n")


# What this process read, by file: parsed again only when the file changed (a command asks several times).
_read: dict[Path, tuple[tuple[int, int, int], dict[str, str]]] = {}


def load(path: Path) -> dict[str, str]:
    """Read and parse an env file, with a clear error when it cannot be read; once while it is unchanged."""
    try:
        stat = path.stat()
        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    except OSError:
        signature = None
    cached = _read.get(path)
    if signature and cached and cached[0] == signature:
        return dict(cached[1])
    values = _parse_file(path)
    if signature:
        _read[path] = (signature, values)
    return dict(values)


def _parse_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LocalflowError(f"{path} does not exist.") from None
    except (PermissionError, IsADirectoryError, UnicodeDecodeError) as error:
        raise LocalflowError(
            f"cannot read {path}: {error.__class__.__name__}; check its permissions."
        ) from None
    return parse(text, path.name)


def set_values(text: str, values: dict[str, str], source: str, *, only_empty: bool = False) -> str:
    """``text`` with each variable of ``values`` set on its own line, every other byte kept.

    The first line of a variable is replaced (with ``only_empty``, only an empty ``NAME=`` line, as a
    template has); a variable without such a line is appended.
    """
    parse(text, source)  # refuse to edit a file that does not parse: a line could be lost
    pending = dict(values)
    chunks = []
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        if binding.key in pending and not (only_empty and binding.value):
            body = original.lstrip()
            export = "export " if body.startswith("export ") else ""
            newline = "\n" if original.endswith("\n") else ""
            original = f"{original[: len(original) - len(body)]}{export}{binding.key}={pending.pop(binding.key)}{newline}"
        chunks.append(original)
    edited = "".join(chunks)
    if pending and edited and not edited.endswith("\n"):
        edited += "\n"
    return edited + "".join(f"{name}={value}\n" for name, value in pending.items())
