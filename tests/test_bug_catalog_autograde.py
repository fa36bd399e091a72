"""Every catalogued bug, pasted into the release notebook and graded by the real `nbgrader autograde` pipeline
(through grading.cli.grade_class, sandbox and all), gets exactly its expected points on its own item and full
points everywhere else (slow: one class of ~14 submissions)."""
import nbformat
import pytest

from conftest import ASSIGNMENT, NOTEBOOK
from graded_course import make_class, run
from grading.reporting import grades as report
from grading.course_config import course_id
from grading.course import REFERENCE_MODULE
from grading.courses import sample_class
from grading.notebook_items import graded_items

pytestmark = pytest.mark.slow

# gradcheck item -> (answer cell id, report column, points), from the notebook
ITEMS = {item.name: (item.answer_id, report.short_name(item.test_id), item.points) for item in graded_items()}


def catalog_class():
    """student -> {answer cell: bug name or "solution"}: student i carries the i-th bug of every item."""
    bugs = sample_class.bug_catalog()
    by_item = {item: [b for b in bugs.values() if b.item == item] for item in ITEMS}
    students = {}
    for i in range(max(len(v) for v in by_item.values())):
        students[f"bugs{i:02d}"] = {cell: (by_item[item][i].name if i < len(by_item[item]) else "solution")
                                    for item, (cell, _, _) in ITEMS.items()}
    return students, bugs


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_class(tmp_path_factory.mktemp("bugs") / "course")
    plans, bugs = catalog_class()
    solutions = sample_class.solution_sources(course / "source" / ASSIGNMENT / "backprop.ipynb")
    for student, plan in plans.items():
        sample_class.make_submission(course, student, -1, plan, solutions, bugs)
    sample_class.register(course, course_id(course), {s: s for s in plans})
    run(course, "grading.cli.grade_class", "--workers", "2", *[a for s in plans for a in ("--student", s)])
    rows = {r.student: r for r in report.load_report(course).rows}
    return plans, bugs, rows, course


def test_every_bug_gets_exactly_its_points_and_nothing_else_is_lost(graded):
    plans, bugs, rows, _ = graded
    assert len(bugs) >= 20 and set(plans) <= set(rows)
    for student, plan in plans.items():
        expected = {column: (bugs[plan[cell]].expected_points if plan[cell] != "solution" else points)
                    for cell, column, points in ITEMS.values()}
        assert rows[student].items == expected, (student, plan)


def test_the_grader_compares_with_the_reference_backward_which_never_reaches_the_student(graded):
    """The hidden checks found the trusted reference (source/ only) and said so; the student's directory, where
    the kernel runs, never got a copy."""
    plans, _, _, course = graded
    shown = ""
    for student in plans:
        folder = course / "autograded" / student / ASSIGNMENT
        assert (folder / "gradcheck.py").is_file() and not (folder / f"{REFERENCE_MODULE}.py").exists()
        nb = nbformat.read(folder / NOTEBOOK, as_version=4)
        shown += "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
    assert "against the reference gradient" in shown and "matches numerical gradients" in shown
