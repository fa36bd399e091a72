"""Feedback for every autograded submission, one student at a time, carrying on past failures.

`nbgrader generate_feedback` already goes on to the next student when one fails, but then exits 1, which stops
`make demo` before export and report. This runs nbgrader's own GenerateFeedback (NbGraderAPI.generate_feedback,
configured by nbgrader_config.py) per student and returns, for each student it could not do, nbgrader's reason:
those students simply have no feedback page.
"""
from pathlib import Path

from grading.class_grading.problems import reason_from_nbgrader_result
from grading.course_config import nbgrader_api


def autograded_students(course, assignment):
    return sorted(p.parent.name for p in (Path(course) / "autograded").glob(f"*/{assignment}") if p.is_dir())


def generate_feedback(course, assignment):
    """{student: one-line reason} for every autograded student whose feedback nbgrader could not write."""
    api = nbgrader_api(course)
    failed = {}
    for student in autograded_students(course, assignment):
        result = api.generate_feedback(assignment, student)
        if not result.get("success"):
            failed[student] = reason_from_nbgrader_result(result)
    return failed
