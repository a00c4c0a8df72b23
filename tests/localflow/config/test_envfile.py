"""``.env`` parsing: Compose's KEY=VALUE syntax, strictly, without echoing a malformed line."""

from __future__ import annotations

import pytest

from localflow.config import envfile
from localflow.config.envfile import parse
from localflow.errors import LocalflowError

# text, expected variables
VALID = (
    ("A=1\n", {"A": "1"}),
    ("# comment\n\nA=1\nB=two words\n", {"A": "1", "B": "two words"}),
    ('A="quoted # not a comment"\n', {"A": "quoted # not a comment"}),
    ("A=1 # trailing comment\n", {"A": "1"}),
    ("export A=1\n", {"A": "1"}),
    ("A=\n", {"A": ""}),
    ("A=key=with=equals\n", {"A": "key=with=equals"}),
)

# text, line number in the error
MALFORMED = (
    ("not a setting\n", 1),
    ("A=1\nB C=2\n", 2),
    ('A=1\n\nB="unterminated\n', 3),
)


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_parses_compose_syntax(text: str, expected: dict[str, str]):
    """It reads what Docker Compose reads."""
    assert parse(text, ".env") == expected


@pytest.mark.parametrize(("text", "line"), MALFORMED)
def test_malformed_line_names_the_line_not_the_content(text: str, line: int):
    """It stops at a malformed line, naming the file and line but never the line's text."""
    with pytest.raises(LocalflowError) as error:
        parse(text, ".env")
    message = str(error.value)
    assert f".env, line {line}:" in message
    assert "B C" not in message and "unterminated" not in message and "not a setting" not in message


# text, the duplicated name, its line, the line it was first set on
DUPLICATED = (
    ("A=1\nA=2\n", "A", 2, 1),
    (
        "# keys\nAIRFLOW__CORE__FERNET_KEY=old\n\nB=1\nAIRFLOW__CORE__FERNET_KEY=new\n",
        "AIRFLOW__CORE__FERNET_KEY",
        5,
        2,
    ),
)


@pytest.mark.parametrize(("text", "name", "line", "first"), DUPLICATED)
def test_a_name_set_twice_is_refused(text: str, name: str, line: int, first: int):
    """Compose would keep the last value silently; here the user is told which lines, not the values."""
    with pytest.raises(LocalflowError) as error:
        parse(text, ".env")
    message = str(error.value)
    assert f".env, line {line}: {name} is set again (first on line {first})" in message
    assert "old" not in message and "new" not in message


# text, values, only_empty, the text after
SET_CASES = (
    ("A=1\nB=2\n", {"B": "3"}, False, "A=1\nB=3\n"),
    ("# keep me\nexport B=2  # mine\n", {"B": "3"}, False, "# keep me\nexport B=3\n"),
    ("A=1", {"B": "2"}, False, "A=1\nB=2\n"),
    ("A=\nB=set\n", {"A": "x"}, True, "A=x\nB=set\n"),
    ("\n\nA=\n", {"A": "x"}, True, "\n\nA=x\n"),
    ('A="quoted"\n', {"A": "plain"}, False, "A=plain\n"),
)


@pytest.mark.parametrize(("text", "values", "only_empty", "after"), SET_CASES)
def test_set_values_finds_lines_as_the_reader_does(text, values, only_empty, after):
    """A line is changed where the parser that reads .env finds it; every other byte stays."""
    assert envfile.set_values(text, values, ".env", only_empty=only_empty) == after
    assert envfile.parse(after, ".env").items() >= values.items()


def test_set_values_refuses_a_file_it_cannot_read():
    """A broken .env is not edited (a line could be lost): the same error as reading it."""
    with pytest.raises(LocalflowError, match="line 2: not a KEY=VALUE line"):
        envfile.set_values("A=1\nnot a line\n", {"A": "2"}, ".env")
