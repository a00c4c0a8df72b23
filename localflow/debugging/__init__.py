"""Debugging DAGs: ``dag-test`` (what F5 runs), debugger support, and the warm runner that makes F5 fast.

``support`` is loaded inside every task process (``plugins/localflow_plugin.py``): it imports
neither Airflow at module level nor localflow's settings. ``dagtest`` runs a DAG file in this process;
``warm_runner`` forks it from a process that imported Airflow already.
"""
