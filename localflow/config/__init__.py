"""Configuration in one room: every setting the workspace reads or writes, and the environment it runs with.

- ``registry``: the table of settings (name, kind, default, help, readers), the one rule for switches,
  the workspace folder. Standard library only: anything may import it, Airflow's processes included.
- ``settings`` (+ ``airflow.env``, shared with compose): paths and the environment every native Airflow
  process runs with, computed once per command and handed down.
- ``settings_yaml``: the one reader of ``airflow_settings.yaml`` (PyYAML only: the secrets backend uses it).
- ``envfile``: reading (and editing one line of) ``.env``; ``validation``: mistaken settings, one line
  each; ``remote_logs`` (+ ``remote_logs.env``): the S3 task logs switch; ``codespaces``: a Codespace's
  UI address (standard library only).

Imports nothing of localflow but ``errors``: every concern sits above it.
"""
