"""Components forked from the supervisor that imported Airflow once: they run, share memory, and survive its shedding."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from localflow.polling import wait_until
from localflow.stack import preload
from testkit.native_stack import running_stack

MB = 2**20
TITLES = ("airflow api_server", "airflow scheduler", "airflow dag-processor", "airflow triggerer")

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


def holds_airflow(pid: int) -> bool:
    """Whether the process has imported Airflow: pydantic's compiled core is among its mapped files."""
    return "_pydantic_core" in Path(f"/proc/{pid}/maps").read_text()


def forked_components(supervisor: psutil.Process) -> dict[str, psutil.Process]:
    """The forked Airflow components among the supervisor's children, by their title."""
    titles = {child.cmdline()[0].split(" --")[0]: child for child in supervisor.children()}
    return {title: child for title, child in titles.items() if title in TITLES}


@pytest.mark.stack
def test_components_share_memory_and_the_supervisor_sheds_airflow(tmp_path, postgres):
    """Each Airflow component is forked, named as its command, and shares Airflow's pages with the others.

    Started on its own, a component shares only its shared libraries (about 30 MB); forked, it also
    shares the Airflow that ``up`` imported. ``up`` itself then re-executes without Airflow (same PID) and
    still supervises them: a component that dies is restarted.
    """
    with running_stack(tmp_path, postgres.create()) as stack:
        assert stack.wait_for_run("example_etl", stack.trigger("example_etl")) == "success"
        supervisor = psutil.Process(stack.process.pid)
        components = forked_components(supervisor)
        assert set(components) == set(TITLES), sorted(components)
        for title, process in components.items():
            memory = process.memory_full_info()
            assert (memory.rss - memory.uss) / MB > 60, f"{title} shares little: {memory}"
        assert not holds_airflow(supervisor.pid)

        killed = components["airflow dag-processor"]
        killed.kill()

        def restarted() -> bool:
            for child in supervisor.children():
                try:
                    command = " ".join(child.cmdline())
                except psutil.NoSuchProcess:  # the killed one, until the supervisor reaps it (a zombie)
                    continue
                if "dag-processor" in command and child.pid != killed.pid:
                    return True
            return False

        with stack.output_on_timeout():
            wait_until(restarted, 60, what="the dag-processor restarted")
        stack.wait_healthy()
        assert not holds_airflow(supervisor.pid)
