"""A tiny graded class, built once per test session with the real nbgrader pipeline and shared by the
report and feedback-page tests.

Use it from a test module with `from graded_course import graded_course  # noqa: F401` (a pytest fixture).
Students:
    correct    submits the instructor notebook (full marks once the checker grades it)
    partial    answers multiply_backward and sum_backward only, 30 hours after the due date (late penalty)
    untouched  submits the release as handed out (0 on every item, whatever the checker does)
"""
import shutil
from datetime import datetime

import nbformat
import pytest

from conftest import ASSIGNMENT, SOURCE_NB, make_course, nbgrader

STUDENTS = ["correct", "partial", "untouched"]
PARTIAL_ANSWERS = ["multiply_backward", "sum_backward"]
DUE_DATE = datetime(2026, 11, 20, 12, 0)  # UTC
ON_TIME, LATE = "2026-11-20 10:00:00.000000 UTC\n", "2026-11-21 18:00:00.000000 UTC\n"
LATE_STUDENTS = ["partial"]


def _partial_notebook(release_nb):
    """The release notebook with the instructor's solution pasted into the PARTIAL_ANSWERS cells only."""
    solutions = {c.id: c.source for c in nbformat.read(SOURCE_NB, as_version=4).cells}
    nb = nbformat.read(release_nb, as_version=4)
    for cell in nb.cells:
        if cell.id in PARTIAL_ANSWERS:
            cell.source = "\n".join(line for line in solutions[cell.id].splitlines()
                                    if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    return nb


def set_due_date(course, due):
    """Record the assignment's due date (naive UTC) in the course's gradebook."""
    from nbgrader.api import Gradebook
    from grading.report import course_id_from_config
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id_from_config(course)) as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=due)


def build_graded_course(root):
    """generate_assignment, submit for STUDENTS, autograde, generate_feedback; return the course dir."""
    course = make_course(root)
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    set_due_date(course, DUE_DATE)
    release_nb = course / "release" / ASSIGNMENT / "backprop.ipynb"
    for student in STUDENTS:
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / "timestamp.txt").write_text(LATE if student in LATE_STUDENTS else ON_TIME)
        if student == "correct":
            shutil.copy(course / "source" / ASSIGNMENT / "backprop.ipynb", folder)
        elif student == "partial":
            nbformat.write(_partial_notebook(release_nb), folder / "backprop.ipynb")
        else:
            shutil.copy(release_nb, folder)
    (course / "students.csv").write_text("id\n" + "\n".join(STUDENTS) + "\n")
    nbgrader(course, "db", "student", "import", "students.csv")  # one process instead of one per student
    nbgrader(course, "autograde", ASSIGNMENT, "--force")
    nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
    return course


_built = {}


@pytest.fixture(scope="session")
def graded_course(tmp_path_factory):
    """Course directory with gradebook.db, autograded/ and feedback/ for STUDENTS (built once per session)."""
    if "course" not in _built:
        _built["course"] = build_graded_course(tmp_path_factory.mktemp("graded") / "course")
    return _built["course"]
