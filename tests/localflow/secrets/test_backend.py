"""airflow_settings.yaml through Airflow's secrets backend: good entries resolve, bad ones give one line.

In-process against the real backend with Airflow's own Connection classes (core's in the servers, the
task SDK's in tasks), then ``python -m localflow airflow`` in a subprocess on a fresh workspace.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import airflow  # noqa: F401 - first: starting Airflow imports the configured backend, this module's subject
import pytest

from localflow.secrets import backend
from localflow.secrets.backend import LocalSettingsBackend
from testkit.environment import REPO
from testkit.native_stack import make_workspace, run_localflow, running_stack, stack_environment

GOOD = """\
connections:
  as_uri: postgresql://me:p%40ss@db.example.com:5433/sales?sslmode=require
  as_mapping:
    conn_type: postgres
    host: db.example.com
    login: me
    password: p@ss
    port: 5433
    schema: sales
    extra: {sslmode: require}
variables:
  text: hello
  number: 42
  config: {rows: 3, regions: [eu, us]}
"""
GOOD_AS_JSON = json.dumps(
    {
        "connections": {
            "as_uri": "postgresql://me:p%40ss@db.example.com:5433/sales?sslmode=require",
            "as_mapping": {
                "conn_type": "postgres",
                "host": "db.example.com",
                "login": "me",
                "password": "p@ss",
                "port": 5433,
                "schema": "sales",
                "extra": {"sslmode": "require"},
            },
        },
        "variables": {"text": "hello", "number": 42, "config": {"rows": 3, "regions": ["eu", "us"]}},
    },
    indent=2,
)
# The Astro CLI's airflow_settings.yaml layout, as `astro dev init` writes it.
GOOD_AS_ASTRO = """\
airflow:
  connections:
    - conn_id: as_uri
      conn_type: postgres
      conn_host: db.example.com
      conn_schema: sales
      conn_login: me
      conn_password: p@ss
      conn_port: 5433
      conn_extra: {sslmode: require}
    - conn_id: as_mapping
      conn_type: postgres
      conn_host: db.example.com
      conn_schema: sales
      conn_login: me
      conn_password: p@ss
      conn_port: 5433
      conn_extra:
        sslmode: require
  pools:
    - pool_name:
  variables:
    - variable_name: text
      variable_value: hello
    - variable_name: number
      variable_value: 42
    - variable_name: config
      variable_value: {rows: 3, regions: [eu, us]}
"""


def connection_classes() -> list[type]:
    """The Connection class each side of Airflow gives its backends."""
    from airflow.models.connection import Connection as CoreConnection
    from airflow.sdk import Connection as SdkConnection

    return [CoreConnection, SdkConnection]


def make_backend(path: Path, connection_class: type | None = None) -> LocalSettingsBackend:
    """The backend over ``path``, with the Connection class Airflow would set (core's by default)."""
    found = LocalSettingsBackend(settings_file=str(path))
    if connection_class:
        found._set_connection_class(connection_class)  # what Airflow's initialize_secrets_backends does
    return found


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The lines the backend logged."""
    return [record.getMessage() for record in caplog.records if record.name == backend.__name__]


@pytest.mark.parametrize("connection_class", connection_classes(), ids=["core", "task-sdk"])
@pytest.mark.parametrize("text", [GOOD, GOOD_AS_JSON, GOOD_AS_ASTRO], ids=["yaml", "json", "astro"])
def test_good_entries_resolve(tmp_path: Path, caplog, text: str, connection_class: type):
    """Both connection forms give the same Connection; strings stay strings, other values are JSON."""
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(text)
    found = make_backend(path, connection_class)
    for conn_id in ("as_uri", "as_mapping"):
        conn = found.get_connection(conn_id)
        assert isinstance(conn, connection_class)
        assert (conn.conn_type, conn.host, conn.login, conn.password, conn.port, conn.schema) == (
            "postgres",
            "db.example.com",
            "me",
            "p@ss",
            5433,
            "sales",
        ), conn_id
        assert conn.extra_dejson == {"sslmode": "require"}
    assert found.get_variable("text") == "hello"
    assert found.get_variable("number") == "42"
    assert json.loads(found.get_variable("config")) == {"rows": 3, "regions": ["eu", "us"]}
    assert found.get_connection("undefined") is None
    assert found.get_variable("undefined") is None
    assert problems(caplog) == []


# (id, a bad entry under `connections:` or `variables:`, what its one line must say)
BAD_ENTRIES = [
    ("no-type", "connections:\n  bad:\n    host: db.example.com\n", "has no conn_type; add one"),
    (
        "not-a-uri",
        "connections:\n  bad: db.example.com:5432\n",
        "is not a connection URI; write conn_type://",
    ),
    ("bad-port", "connections:\n  bad: postgres://me:x@db:port/sales\n", "is not a valid URI"),
    (
        "unknown-field",
        "connections:\n  bad:\n    conn_type: http\n    hostname: x\n",
        "unknown field(s) hostname",
    ),
    (
        "extra-not-json",
        "connections:\n  bad:\n    conn_type: http\n    extra: '{oops'\n",
        "extra that is not JSON",
    ),
    ("duplicated-id", "connections:\n  bad: http://a\n  bad: http://b\n", "is defined 2 times (lines 2, 3)"),
    (
        "duplicated-field",
        "connections:\n  bad:\n    conn_type: http\n    host: a\n    host: b\n",
        "'host' twice",
    ),
    ("variable-without-value", "variables:\n  bad:\n", "has no value"),
    ("pool-without-slots", "pools:\n  bad: {description: a pool}\n", "has slots None"),
    ("pool-slots-not-a-number", "pools:\n  bad: many\n", "has slots 'many'"),
]


@pytest.mark.parametrize(("bad", "says"), [case[1:] for case in BAD_ENTRIES], ids=[c[0] for c in BAD_ENTRIES])
def test_bad_entry_gives_one_line_and_the_others_work(tmp_path: Path, caplog, bad: str, says: str):
    """The line names the file, the entry and the fix; the entry is skipped and the good ones resolve."""
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(bad + GOOD)  # a section may be written twice: both are read
    with caplog.at_level(logging.WARNING, logger=backend.__name__):
        found = make_backend(path)
        assert found.get_connection("bad") is None and found.get_variable("bad") is None
        assert found.get_connection("as_uri").host == "db.example.com"
        assert found.get_variable("text") == "hello"
    (line,) = problems(caplog)
    assert str(path) in line and "'bad'" in line and says in line, line
    assert "\n" not in line


# (id, file, where the mistake is): PyYAML itself notices each of these a line or more later
MALFORMED = [
    ("unclosed-bracket", "connections:\n  ok: http://a\n  broken: [unclosed\n", "line 3, column 11"),
    ("unclosed-quote", 'connections:\n  ok: http://a\n  broken: "unclosed\n  b: c\n', "line 3, column 11"),
    ("key-without-colon", "connections:\n  ok: http://a\n  broken http://b\n  c: http://c\n", "line 3, column 3"),
    ("word-without-colon", "variables:\n  ok: a\n  broken\n  c: d\n", "line 3, column 3"),
]  # fmt: skip


# (id, file): each holds pool_a (2 slots, described) and pool_b (1 slot)
POOLS = [
    ("yaml", "pools:\n  pool_a: {slots: 2, description: two at once}\n  pool_b: 1\n"),
    (
        "astro",
        "airflow:\n  pools:\n    - pool_name: pool_a\n      pool_slot: 2\n      pool_description: two at once\n"
        "    - pool_name: pool_b\n      pool_slot: 1\n    - pool_name:\n      pool_slot:\n",
    ),
]


@pytest.mark.parametrize("text", [case[1] for case in POOLS], ids=[case[0] for case in POOLS])
def test_pools_are_read(tmp_path: Path, caplog, text: str):
    """Pools in either layout give slots and description; Astro's blank template item is no problem."""
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(text)
    assert make_backend(path).settings().pools == {"pool_a": (2, "two at once"), "pool_b": (1, "")}
    assert problems(caplog) == []


@pytest.mark.parametrize(("text", "where"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_file_gives_one_line_with_its_position(tmp_path: Path, caplog, text: str, where: str):
    """Unparsable YAML names the file and the line and column of the mistake; nothing is read from it."""
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(text)
    found = make_backend(path)
    assert found.get_connection("ok") is None and found.get_variable("ok") is None
    (line,) = problems(caplog)
    assert f"{path}: {where}: not valid YAML" in line and "fix it there" in line, line


def test_each_problem_is_logged_once_per_change_of_the_file(tmp_path: Path, caplog):
    """Lookups do not repeat the line; saving the file (still bad) logs it again."""
    path = tmp_path / "airflow_settings.yaml"
    path.write_text("connections:\n  bad:\n    host: x\n")
    for _ in range(3):
        make_backend(path).get_connection("bad")  # Airflow makes new backend instances for some lookups
    assert len(problems(caplog)) == 1
    path.write_text("connections:\n  bad:\n    host: xy\n")
    make_backend(path).get_variable("anything")
    assert len(problems(caplog)) == 2


def test_an_edit_is_seen_without_restart(tmp_path: Path):
    """The same backend instance returns the new value after the file is saved again."""
    path = tmp_path / "airflow_settings.yaml"
    path.write_text("variables:\n  greeting: hello\n")
    found = make_backend(path)
    assert found.get_variable("greeting") == "hello"
    path.write_text("variables:\n  greeting: hello again\nconnections:\n  new: http://example.com\n")
    assert found.get_variable("greeting") == "hello again"
    assert found.get_connection("new").host == "example.com"
    path.unlink()
    assert found.get_variable("greeting") is None


def test_missing_file_means_no_entries(tmp_path: Path, caplog):
    """No file, no entries, and nothing logged."""
    found = make_backend(tmp_path / "airflow_settings.yaml")
    assert found.get_connection("any") is None and found.get_variable("any") is None
    assert problems(caplog) == []


# (environment, where the file is): the order in which the backend looks
LOCATIONS = [
    ({"LOCALFLOW_SETTINGS_FILE": "/elsewhere/s.yaml", "LOCALFLOW_WORKSPACE": "/ws"}, "/elsewhere/s.yaml"),
    ({"LOCALFLOW_WORKSPACE": "/ws"}, "/ws/airflow_settings.yaml"),
    ({}, str(REPO / "airflow_settings.yaml")),
]


@pytest.mark.parametrize(
    ("environment", "expected"), LOCATIONS, ids=["explicit", "workspace", "beside-package"]
)
def test_file_location(monkeypatch, environment: dict[str, str], expected: str):
    """LOCALFLOW_SETTINGS_FILE, else the workspace named by LOCALFLOW_WORKSPACE, else the package's folder."""
    for name in ("LOCALFLOW_SETTINGS_FILE", "LOCALFLOW_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert LocalSettingsBackend().path == Path(expected)


def test_airflow_cli_shows_values_from_the_file(tmp_path: Path):
    """On a fresh workspace `secrets` makes the file from the example, and Airflow's CLI reads it.

    The file's value wins over AIRFLOW_VAR_* (Airflow asks the configured backend first).
    """
    workspace = make_workspace(tmp_path)
    env = stack_environment(workspace, None, AIRFLOW_VAR_EXAMPLE_GREETING="from the environment")
    env.update(AIRFLOW_VAR_ONLY_IN_ENVIRONMENT="env value")
    created = run_localflow(env, "secrets")
    assert created.returncode == 0, created.stderr
    assert "airflow_settings.yaml: made from airflow_settings.example.yaml" in created.stdout
    settings = workspace / "airflow_settings.yaml"
    assert settings.read_text() == (REPO / "airflow_settings.example.yaml").read_text()
    settings.write_text(settings.read_text().replace("password: change-me", "password: s3cret"))

    connection = run_localflow(env, "airflow", "connections", "get", "example_api", "-o", "json")
    assert connection.returncode == 0, connection.stderr
    (shown,) = json.loads(connection.stdout)
    assert (shown["conn_type"], shown["host"], shown["password"]) == ("http", "api.example.com", "s3cret")
    for key, expected in [
        ("example_greeting", "Hello from airflow_settings.yaml"),
        ("only_in_environment", "env value"),
    ]:
        variable = run_localflow(env, "airflow", "variables", "get", key)
        assert (variable.returncode, variable.stdout.strip()) == (0, expected), variable.stderr


# (id, airflow_settings.yaml, command, what stderr says)
CLI_WHY_NOT = [
    ("bad-entry", "connections:\n  my_db:\n    host: db\n", ["connections", "get", "my_db"],
     "connection 'my_db' (line 2) has no conn_type"),
    ("invalid-yaml", "variables:\n  greeting hello\n  other: x\n", ["variables", "get", "greeting"],
     "airflow_settings.yaml: line 2, column 3: not valid YAML"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "command", "says"), [c[1:] for c in CLI_WHY_NOT], ids=[c[0] for c in CLI_WHY_NOT]
)
def test_airflow_cli_says_why_an_entry_is_missing(tmp_path: Path, text: str, command: list[str], says: str):
    """`connections get` / `variables get` of a skipped entry print the backend's line on stderr, once.

    Airflow's CLI turns logging off around these commands, so the line would reach only the logs.
    """
    workspace = make_workspace(tmp_path)
    env = stack_environment(workspace, None)
    assert run_localflow(env, "secrets").returncode == 0
    (workspace / "airflow_settings.yaml").write_text(text)
    result = run_localflow(env, "airflow", *command)
    assert result.returncode != 0, result.stdout
    why = [line for line in result.stderr.splitlines() if says in line]
    assert len(why) == 1 and why[0].startswith("WARNING: "), result.stderr
    assert "fix" in why[0] or "add one" in why[0], why[0]


def test_example_file_is_valid(tmp_path: Path, caplog):
    """The committed example parses without a problem and defines what the example DAG falls back to."""
    path = tmp_path / "airflow_settings.yaml"
    shutil.copy(REPO / "airflow_settings.example.yaml", path)
    found = make_backend(path)
    assert found.get_connection("localflow_sqlite").host == ":memory:"
    assert found.get_connection("example_api").extra_dejson == {"timeout": 10}
    assert json.loads(found.get_variable("example_limits")) == {"rows": 3, "regions": ["eu", "us"]}
    assert problems(caplog) == []
    assert "localflow_postgres" not in found.settings().connections  # it would shadow the stack's own


def test_names_match_what_prepare_makes():
    """``secrets`` makes the file the backend reads (one name, in the registry)."""
    from localflow.config import settings, settings_yaml

    assert (settings.SETTINGS_FILE_NAME, settings.SETTINGS_EXAMPLE_NAME) == (
        backend.FILE_NAME,
        settings_yaml.EXAMPLE_NAME,
    )
    assert os.path.basename(LocalSettingsBackend().path) == backend.FILE_NAME


READS_SETTINGS = '''"""Generated DAG: its task checks what airflow_settings.yaml holds against the run's conf."""

from __future__ import annotations

import pendulum
from airflow.sdk import BaseHook, Variable, dag, task

# A top-level lookup: the dag-processor's parse (and the task's own) must find it in the file too.
PARSED_GREETING = Variable.get("e2e_greeting")


@dag(dag_id="reads_settings", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), tags=["generated"])
def build():
    @task
    def check(**context) -> None:
        found = {"greeting": Variable.get("e2e_greeting"), "host": BaseHook.get_connection("e2e_api").host}
        assert found == context["dag_run"].conf["expected"], found
        assert PARSED_GREETING == found["greeting"], PARSED_GREETING

    check()


build()
'''


@pytest.mark.stack
def test_a_task_of_the_native_stack_reads_the_file_and_its_edits(tmp_path: Path):
    """A task the scheduler runs gets the file's variable and connection, and the edited ones next run; so
    does a lookup at the DAG file's top level, in the dag-processor's parse and the task's."""
    workspace = tmp_path / "workspace"
    (workspace / "dags").mkdir(parents=True)
    (workspace / "dags" / "reads_settings.py").write_text(READS_SETTINGS)
    settings = workspace / "airflow_settings.yaml"
    settings.write_text(
        "connections:\n  e2e_api: http://one.example.com\nvariables:\n  e2e_greeting: hello\n"
    )
    with running_stack(workspace, None) as stack:
        for greeting, host in [("hello", "one.example.com"), ("edited", "two.example.com")]:
            settings.write_text(
                f"connections:\n  e2e_api: http://{host}\nvariables:\n  e2e_greeting: {greeting}\n"
            )
            run_id = stack.trigger("reads_settings", {"expected": {"greeting": greeting, "host": host}})
            assert stack.wait_for_run("reads_settings", run_id) == "success", (greeting, host)
