"""Tests of localflow/container/."""
