"""Components forked from the supervisor that imported Airflow once: they run, and they share its memory."""

from __future__ import annotations

import psutil
import pytest

from localflow import preload
from tests.native_stack import running_stack

MB = 2**20

# airflow arguments, exit code, what the log must say
COMMANDS = (
    (["version"], 0, "3.3."),
    (["no-such-command"], 2, "invalid choice: 'no-such-command'"),
)


@pytest.mark.parametrize(("args", "code", "logged"), COMMANDS)
def test_fork_airflow_runs_the_command(tmp_path, args: list[str], code: int, logged: str):
    """The forked child runs ``airflow ARGS`` with its output in the log and reports its exit code."""
    log = tmp_path / "component.log"
    process = preload.fork_airflow(args, log)
    assert process.wait(timeout=120) == code
    assert process.poll() == code
    assert logged in log.read_text()


@pytest.mark.stack
def test_components_share_the_supervisors_memory(tmp_path, postgres):
    """Each Airflow component is forked from ``up``, named as its command, and shares pages with it.

    Started on its own, a component shares only its shared libraries (about 30 MB); forked, it also
    shares the Airflow that ``up`` imported.
    """
    with running_stack(tmp_path, postgres.create()) as stack:
        token = stack.token()
        assert stack.wait_for_run("example_etl", stack.trigger("example_etl", token), token) == "success"
        supervisor = psutil.Process(stack.process.pid)
        titles = {child.cmdline()[0].split(" --")[0]: child for child in supervisor.children()}
        for title in (
            "airflow api_server",
            "airflow scheduler",
            "airflow dag-processor",
            "airflow triggerer",
        ):
            assert title in titles, sorted(titles)
            memory = titles[title].memory_full_info()
            assert (memory.rss - memory.uss) / MB > 60, f"{title} shares little: {memory}"
