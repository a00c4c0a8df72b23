"""Tests of the workspace tooling package."""
