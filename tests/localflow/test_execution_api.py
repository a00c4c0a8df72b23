"""The Execution API with one copy of its routes: every route of Airflow's newest version, served."""

from __future__ import annotations

import subprocess
import sys

from fastapi.routing import APIRoute

from localflow import execution_api
from localflow.polling import wait_until
from localflow.rest import request_json
from testkit.environment import REPO, free_port
from testkit.native_stack import make_workspace, run_localflow, stack_environment


def routes(app) -> set[tuple[str, frozenset[str]]]:
    """(path, methods) of every route of a FastAPI app."""
    return {(route.path, frozenset(route.methods)) for route in app.routes if isinstance(route, APIRoute)}


def test_every_route_of_airflows_router_is_served():
    """What the newest version serves is the router as written: every route of it is in the app."""
    from airflow.api_fastapi.execution_api.routes import execution_api_router

    assert routes(execution_api_router) <= routes(execution_api.create_app())


def test_compose_api_server_serves_it(migrated_env):
    """`python -m localflow.execution_api api-server` (compose's command) is Airflow's api-server with it."""
    port = free_port()
    env = {**migrated_env, "AIRFLOW__API__PORT": str(port)}
    command = [sys.executable, "-m", "localflow.execution_api", "api-server", "--port", str(port)]
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"

        def answers() -> dict | None:
            try:
                status, body = request_json(f"{base}/execution/openapi.json", timeout=5)
            except OSError:
                return None
            return body if status == 200 else None

        spec = wait_until(answers, 120, interval=0.5, what="the api-server's Execution API")
        assert "localflow" in spec["info"]["title"]
        assert request_json(f"{base}/api/v2/monitor/health")[0] == 200
    finally:
        server.terminate()
        server.wait(30)


BEYOND_ASCII_DAG = '''"""Generated DAG täglich_bericht: ids with letters beyond ASCII, which Airflow's validation accepts."""

import pendulum
from airflow.sdk import Variable, dag, task


@dag(dag_id="täglich_bericht", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"))
def build():
    @task(task_id="größe")
    def groesse() -> int:
        return 42

    @task(task_id="zeige")
    def show(value: int) -> None:
        print(f"größe={value} grenze={Variable.get('größe_grenze', default='keine')}")

    show(groesse())


build()
'''


def test_dag_test_runs_ids_beyond_ascii(tmp_path):
    """dag-test (what F5 runs) of a DAG and tasks with ids such as ``täglich_bericht`` and ``größe``
    succeeds: the XCom push and pull and a variable lookup go through the in-process Execution API, whose
    paths hold the ids. Stock ``dag.test()`` (``--stock``) fails at the XCom push."""
    workspace = make_workspace(tmp_path / "workspace")
    dag_file = workspace / "dags" / "taeglich_bericht.py"
    dag_file.write_text(BEYOND_ASCII_DAG)
    env = stack_environment(workspace, None)
    result = run_localflow(env, "dag-test", str(dag_file))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "größe=42 grenze=keine" in output
    assert "localflow: täglich_bericht finished: success" in output
    stock = run_localflow(env, "dag-test", "--stock", str(dag_file))
    assert stock.returncode == 1 and "UnicodeDecodeError" in stock.stdout + stock.stderr, "fixed upstream?"
