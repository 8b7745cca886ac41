"""Runtimes that execute a job: sandbox (bubblewrap), docker, process (issue #5)."""
