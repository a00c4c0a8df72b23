"""Tests of localflow.config."""
