"""What the editor shows of the running stack: its import errors and DAG warnings as lines VS Code's
problem matcher reads (``problems``), and a run of the open file's DAG with its task logs (``run``).

Both talk to the stack only over REST (``localflow.rest``), natively and from the dev container, so that
they show what the stack itself parsed and ran. They import no Airflow and nothing of ``stack``: they run
beside a stack, never inside it. docs/editor.md has how VS Code uses them (``.vscode/tasks.json``).
"""
