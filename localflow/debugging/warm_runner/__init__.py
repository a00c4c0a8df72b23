"""The warm debug runner: F5's debuggee forked from a process that imported Airflow once (about 2 s saved).

``.vscode/launch.json`` runs ``python -m localflow.debugging.warm_runner`` before debugpy's command line:
the client (``client.py``) hands that command line, its environment and terminal to a background runner
(``server.py``), which forks a run of it; ``protocol.py`` is what the two agree on. The runner is replaced
when what it imported may be out of date and exits after ``LOCALFLOW_WARM_RUNNER_IDLE`` seconds idle;
``LOCALFLOW_WARM_RUNNER=off`` runs directly. docs/debugging.md has the details.

Standard library and localflow's settings only until a run starts: the client runs first in every F5.
"""
