"""The dag watcher: a saved DAG file is reparsed at once, through Airflow's own reparse request.

``files.py`` decides which DAG files a batch of saved paths asks to reparse (helpers included),
``reparse.py`` asks the api-server (``PUT /api/v2/parseDagFile``), ``events.py`` listens for saves (file
events, or polling on a mount from macOS or Windows), ``run.py`` is the loop of ``python -m localflow
watch``. Runs as its own process natively and in compose; imports no Airflow. docs/performance.md has why.
"""
