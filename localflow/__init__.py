"""localflow: the workspace's own tooling. Each concern is a subpackage, on top of one room of configuration.

- ``config/``: every setting the workspace reads or writes (the registry), the environment of a native
  run (read once per command), ``.env``'s syntax, mistaken settings, ``airflow_settings.yaml``'s reader.
- ``secrets/``: ``.env``'s generated secrets, the key guard, key rotation, preparing a workspace, the
  secrets backend.
- ``stack/``: the native stack (``up``, the supervisor, preloading, the Celery workers, the local S3 server) and the executor
  compose uses too.
- ``debugging/``: ``dag-test`` (F5), debugger support inside tasks, the warm debug runner.
- ``watcher/``: the dag watcher that reparses a saved file at once.
- ``container/``: the image's entrypoint and healthchecks.
- Shared: ``errors``, ``bootstrap`` (standard library only), ``rest`` (the one Airflow REST client),
  ``polling``, ``airflow_cli``, ``execution_api``, ``checks``, ``stopping``, ``internals`` (the private
  Airflow and CPython internals we rely on). ``__main__``: the one table of commands.

Every module may import ``config``, which imports nothing above it; shared modules import no concern,
and no concern imports another except through the dependencies their docstrings name.
"""
