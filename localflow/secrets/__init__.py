"""The workspace's secrets and what must hold before Airflow starts.

``rules`` (what each secret is), ``files`` (safe writes), ``store``
(``.env`` itself), ``passwords`` (the api-server's admin password file), ``keyguard`` (a Fernet key that
can read the database), ``rotation`` (``rotate-fernet-key``), ``prepare`` (what ``up`` and
``airflow-init`` run first) and ``hook`` (the ``secrets`` command). Imports only shared modules;
``keyguard`` reads the database with plain SQL, without importing Airflow.
"""
