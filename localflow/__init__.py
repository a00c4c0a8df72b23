"""localflow: the workspace's own tooling. Each concern is a subpackage; what they share sits beside them.

- ``secrets/``: ``.env`` and its generated secrets, the key guard, key rotation, preparing a workspace.
- ``stack/``: the native stack (``up``, the supervisor, preloading, the Celery workers, the local S3 server) and the executor
  compose uses too.
- ``debugging/``: ``dag-test`` (F5), debugger support inside tasks, the warm debug runner.
- ``watcher/``: the dag watcher that reparses a saved file at once.
- ``container/``: the image's entrypoint and healthchecks.
- Shared: ``settings`` (+ ``airflow.env``), ``codespaces`` (a Codespace's UI address), ``remote_logs``
  (+ ``remote_logs.env``, S3 task logs), ``envfile`` (the KEY=VALUE syntax), ``settings_check``,
  ``errors``, ``bootstrap`` (standard library only), ``rest`` (the one Airflow REST client), ``polling``,
  ``airflow_cli``, ``stopping``, ``internals`` (the private Airflow and CPython internals we rely on).

Subpackages import shared modules, never the other way round, and no subpackage imports another except
through the dependencies their docstrings name.
"""
