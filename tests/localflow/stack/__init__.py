"""Tests of localflow.stack."""
