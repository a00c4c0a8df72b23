"""Tests of localflow.secrets."""
