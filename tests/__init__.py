"""Test suite of the localflow workspace."""
