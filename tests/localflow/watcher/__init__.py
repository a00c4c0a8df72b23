"""Tests of localflow.watcher."""
