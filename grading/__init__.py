"""Instructor-side tooling for the ex09_backprop course bundle (never shipped to students)."""
