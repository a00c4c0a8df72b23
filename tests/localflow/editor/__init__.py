"""Tests of localflow/editor/: the Problems panel and running a DAG from the editor."""
