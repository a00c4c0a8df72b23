"""Glue that runs only inside the image: the entrypoint (drop root, become the workspace's owner) and the
dag-processor's and triggerer's healthcheck. Standard library (and psycopg2) only: no Airflow, no settings;
the entrypoint imports ``localflow.config.codespaces`` alone, itself standard library only.
"""
