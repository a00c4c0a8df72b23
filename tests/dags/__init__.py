"""Tests of the example DAGs."""
