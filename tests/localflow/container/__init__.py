"""Tests of localflow.container."""
