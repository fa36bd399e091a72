"""Instructor commands: `python -m grading.cli.<name>` (the Makefile calls them)."""
