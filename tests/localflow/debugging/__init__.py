"""Tests of localflow.debugging."""
