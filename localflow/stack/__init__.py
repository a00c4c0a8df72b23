"""The Airflow stack's own parts: ``up`` and the native supervisor, preloading, and the on-demand executor.

``executor`` is loaded inside the scheduler (natively and in compose: ``airflow.env`` names it) and imports
only Airflow, the registry and ``internals``. ``supervisor`` must stay small once it has forked the components: it imports no
``secrets`` module beyond the rules, and Airflow only through ``preload``. ``up`` prepares the workspace
(``secrets.prepare``) and then becomes the supervisor. ``workers`` runs and checks the Celery workers
(docs/celery.md), ``s3_server`` the local S3 server of remote task logs (docs/logs.md). The workspace's
plugin loads ``parse_guard`` and ``parse_lookups`` into the dag-processor and ``task_output`` into every task process, which
imports no localflow module.
"""
