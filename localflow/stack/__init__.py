"""The Airflow stack's own parts: ``up`` and the native supervisor, preloading, and the on-demand executor.

``executor`` is loaded inside the scheduler (natively and in compose: ``airflow.env`` names it) and imports
only Airflow. ``supervisor`` must stay small once it has forked the components: it imports no
``secrets`` module beyond the rules, and Airflow only through ``preload``. ``up`` prepares the workspace
(``secrets.prepare``) and then becomes the supervisor. The workspace's plugin loads ``parse_guard`` into
the dag-processor and ``task_output`` into every task process, which imports no localflow module.
"""
