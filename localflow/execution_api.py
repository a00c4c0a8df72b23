"""Airflow's Task Execution API served without Cadwyn's per-version copies of its routes.

Airflow's ``create_task_execution_api_app`` makes a copy of every route for each version of the API
(9 in Airflow 3.3.2) at its first request: measured 3.2 s and 49 MB. Tasks, triggers and parsing
processes of the same Airflow speak its newest version, which is the routes as written, so the native
stack's api-server (``stack/preload.py``), compose's (``python -m localflow.execution_api api-server``) and
``dag-test``'s in-process API (``debugging/dagtest.py``) serve those alone, with Airflow's middleware and
error handlers. A native api-server restarted after a crash runs as plain ``airflow`` with Airflow's app.

Imports only Airflow and FastAPI, and those only when called.
"""

from __future__ import annotations

import sys
from typing import Any

from localflow import internals

ERRORS = "airflow.api_fastapi.common.exceptions"


def create_app(lifespan: Any = None, *, reissue_tokens: bool = True) -> Any:
    """Airflow's Execution API app, routes as written (``reissue_tokens``: Airflow's JWT middleware).

    What Airflow's own factory adds in the installed release only: before 3.3 it adds neither the trace
    context dependency nor the common error handlers, before 3.2 no correlation ids either.
    """
    from airflow.api_fastapi.execution_api import app as execution_api
    from airflow.api_fastapi.execution_api.routes import execution_api_router
    from airflow.configuration import conf
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(
        title="Airflow Task Execution API (routes of the newest version, localflow)",
        lifespan=lifespan or execution_api.lifespan,
        generate_unique_id_function=lambda route: route.name,
    )
    if internals.holds(internals.EXECUTION_API, "CorrelationIdMiddleware"):
        app.add_middleware(execution_api.CorrelationIdMiddleware)
    if reissue_tokens:
        app.add_middleware(execution_api.JWTReissueMiddleware)
    if internals.holds(internals.EXECUTION_API, "_inject_trace_context_dep"):
        mode = conf.get("execution_api", "otel_trace_propagation", fallback="only-authenticated")
        execution_api._inject_trace_context_dep(execution_api_router.routes, mode)
    app.include_router(execution_api_router)
    if internals.holds(ERRORS, "init_error_handlers"):
        from airflow.api_fastapi.common.exceptions import init_error_handlers

        init_error_handlers(app)

    @app.exception_handler(Exception)
    def handle_exceptions(request: Request, exc: Exception) -> JSONResponse:
        # As Airflow's: mounted as a sub-app, an unhandled exception would otherwise go unlogged.
        execution_api.logger.exception(
            "Handle died with an error", exc_info=(type(exc), exc, exc.__traceback__)
        )
        content = {"message": "Internal server error"}
        if correlation_id := request.headers.get("correlation-id"):
            content["correlation-id"] = correlation_id
        return JSONResponse(status_code=500, content=content)

    return app


class Pep3333Paths:
    """The WSGI app of an in-process Execution API, handed each request's path as PEP 3333 says.

    httpx's ``WSGITransport`` puts the path in ``PATH_INFO`` decoded (``/xcoms/täglich_bericht/...``);
    PEP 3333 wants its UTF-8 bytes, one character each, which a2wsgi (the bridge to the ASGI app) decodes
    back. So every call whose path holds a DAG, task or variable id with a letter beyond ASCII failed
    with ``UnicodeDecodeError`` in a2wsgi, in stock ``dag.test()`` too. Ids that are ASCII pass unchanged.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Any) -> Any:  # noqa: D102 - WSGI's
        for key in ("SCRIPT_NAME", "PATH_INFO"):
            environ[key] = environ.get(key, "").encode("utf-8").decode("latin-1")
        return self.app(environ, start_response)

    def __getattr__(self, name: str) -> Any:  # the a2wsgi middleware's own attributes (its loop)
        return getattr(self.app, name)


def serve_unicode_paths(transport: Any) -> None:
    """Make an in-process Execution API's transport (httpx's ``WSGITransport``) serve paths beyond ASCII."""
    if not isinstance(transport.app, Pep3333Paths):  # once: the transport is Airflow's cached one
        transport.app = Pep3333Paths(transport.app)


def serve_unversioned() -> None:
    """Make this process (and what it forks) build the Execution API with ``create_app``."""
    from airflow.api_fastapi.execution_api import app as execution_api

    def create_task_execution_api_app(lifespan: Any = execution_api.lifespan) -> Any:
        return create_app(lifespan)

    execution_api.create_task_execution_api_app = create_task_execution_api_app
    # The api-server's app module imported the factory by name.
    if main_app := sys.modules.get("airflow.api_fastapi.app"):
        main_app.create_task_execution_api_app = create_task_execution_api_app


def main(args: list[str]) -> None:
    """``airflow ARGS`` in this process with ``serve_unversioned``: compose's api-server runs it this way."""
    import airflow.api_fastapi.app  # noqa: F401 - imported first, so that its copy of the factory is swapped too
    from airflow.__main__ import main as airflow_main

    serve_unversioned()
    sys.argv = ["airflow", *args]
    airflow_main()


if __name__ == "__main__":
    main(sys.argv[1:])
