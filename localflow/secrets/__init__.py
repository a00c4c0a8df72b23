"""The workspace's secrets and what must hold before Airflow starts.

``rules`` (what each secret is), ``files`` (safe writes), ``schema`` (is the database migrated), ``store``
(``.env`` itself), ``passwords`` (the api-server's admin password file), ``keyguard`` (a Fernet key that
can read the database), ``rotation`` (``rotate-fernet-key``), ``prepare`` (what ``up`` and
``airflow-init`` run first) and ``hook`` (the ``secrets`` command). Imports only shared modules;
``keyguard`` reads the database with plain SQL, without importing Airflow.

``backend`` is different: Airflow's secrets backend over ``airflow_settings.yaml`` (connections and
variables), loaded inside every Airflow process, tasks included. It imports only the standard library,
PyYAML and Airflow: no localflow module, above all not ``localflow.config.settings`` (dotenv).
"""
