"""Tests on a corpus of DAGs that are not ours: Airflow's own examples."""
