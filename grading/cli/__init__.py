"""Instructor commands: `python -m grading.cli.<name>` (the Makefile calls them). Each only parses its arguments,
calls the library (grading/class_grading/, grading/courses/, grading/course_config.py, ...) and prints; nothing
imports this package (tests/test_architecture.py)."""
