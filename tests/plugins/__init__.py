"""Tests of the plugins/ helpers."""
