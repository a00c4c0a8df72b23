"""The Airflow stack's own parts: ``up`` and the native supervisor, preloading, and the on-demand executor.

``executor`` is loaded inside the scheduler (natively and in compose: ``airflow.env`` names it) and imports
only Airflow. ``supervisor`` must stay small once it has forked the components: it imports no
``secrets`` module beyond the rules, and Airflow only through ``preload``. ``up`` prepares the workspace
(``secrets.prepare``) and then becomes the supervisor. ``s3_server`` is the local S3 server of remote task
logs (docs/logs.md), a component of ``up`` and the compose service ``s3`` while ``.env`` turns them on.
"""
