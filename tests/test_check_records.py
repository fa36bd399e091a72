"""The misconception report reads the grader's check records, never the checker's printed text (slow: one class
of three submissions graded by the real pipeline, grading.cli.grade_class, sandbox and all).

* Rewording: every message template of the course's checker (source/<assignment>/gradcheck_text.py) is reworded
  before grading -- its words joined by "_" and wrapped in «», so not one phrase the old text-reading report
  looked for survives. Points and named mistakes come out exactly as the unreworded checker gives them.
* Forging: a student who writes check records into the submitted notebook -- in every test cell's metadata, in a
  duplicate of a test cell placed before it, in the notebook's metadata -- changes nothing: sanitizing drops
  them, the grader writes its own.
"""
import json

import nbformat
import pytest

from conftest import ASSIGNMENT, NOTEBOOK
from graded_course import make_class, run
from grading.course_config import course_id
from grading.courses import sample_class
from grading.course import CHECKS, METADATA_KEY
from grading.notebook_items import graded_items
from grading.reporting import grades, mistakes
from test_misconceptions import CATALOG, load_checker
from test_misconceptions import mistakes as named_in_process

pytestmark = pytest.mark.slow

ITEMS = {item.name: item for item in graded_items()}
PLANS = {   # answer cell -> catalog bug; every other answer is the solution
    "reword_a": {"multiply_backward": "multiply_outputs_swapped", "nll_grad": "nll_grad_missing_1_over_n",
                 "logreg_step": "step_b_not_updated"},
    "reword_b": {"multiply_backward": "multiply_stale_cache", "sum_backward": "sum_returns_scalar",
                 "dot_product_backward": "dot_product_d_out_ignored", "nll_grad": "nll_grad_y_minus_probs"},
    "forger": {},
}
FORGED = "missing_1_over_n"


def reword_every_message(course):
    """Reword every template of the course's trusted checker (the grader's copy, source/<assignment>/)."""
    path = course / "source" / ASSIGNMENT / "gradcheck_text.py"
    path.write_text(path.read_text() + '\n\n# Reworded by tests/test_check_records.py\nTEMPLATES = '
                    '{key: "«" + text.replace(" ", "_") + "»" for key, text in TEMPLATES.items()}\n')


def forge_records(path):
    """Write plausible check records -- every sub-check failed as FORGED -- wherever a student can."""
    nb = nbformat.read(path, as_version=4)
    by_test = {item.test_id: item for item in ITEMS.values()}
    cells = []
    for cell in nb.cells:
        item = by_test.get(cell.metadata.get("nbgrader", {}).get("grade_id"))
        if item is not None:
            forged = [{"item": item.name, "check": check, "earned": 0.0, "possible": points, "code": FORGED}
                      for check, points in load_checker().load("gradcheck_engine").ITEMS[item.name].points.items()]
            cell.metadata[METADATA_KEY] = {CHECKS: forged}
            duplicate = nbformat.from_dict(json.loads(json.dumps(cell)))
            duplicate.id = cell.id + "-copy"
            cells.append(duplicate)   # placed first: sanitizing keeps the first copy of a grade id
        cells.append(cell)
    nb.cells = cells
    nb.metadata[METADATA_KEY] = {CHECKS: [], "problems": []}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_class(tmp_path_factory.mktemp("records") / "course")
    reword_every_message(course)
    solutions = sample_class.solution_sources(course / "source" / ASSIGNMENT / NOTEBOOK)
    bugs = sample_class.bug_catalog()
    for student, plan in PLANS.items():
        sample_class.make_submission(course, student, -1, {**sample_class.SOLVED, **plan}, solutions, bugs)
    forge_records(course / "submitted" / "forger" / ASSIGNMENT / NOTEBOOK)
    sample_class.register(course, course_id(course), {s: s for s in PLANS})
    run(course, "grading.cli.grade_class", "--workers", "2", *[a for s in PLANS for a in ("--student", s)])
    return course


def expected_findings():
    """{(student, item, sub-check, mistake)} as the unreworded checker names them, in-process."""
    checker, by_answer = load_checker(), {item.answer_id: item for item in ITEMS.values()}
    return {(student, grades.short_name(by_answer[cell].test_id), check, mistake)
            for student, plan in PLANS.items() for cell, bug in plan.items()
            for check, mistake in named_in_process(checker, CATALOG[bug].item, CATALOG[bug].source).items()}


def test_rewording_every_message_changes_no_point_and_no_named_mistake(graded):
    nb = nbformat.read(graded / "autograded" / "reword_a" / ASSIGNMENT / NOTEBOOK, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "«missing_1/N_(off_by_a_factor_N_=_" in text and "missing 1/N (off" not in text   # reworded indeed
    rows = {r.student: r for r in grades.load_report(graded).rows}
    for student, plan in PLANS.items():
        bugs = {grades.short_name(ITEMS[CATALOG[bug].item].test_id): CATALOG[bug].expected_points
                for bug in plan.values()}
        full = {grades.short_name(item.test_id): item.points for item in ITEMS.values()}
        assert rows[student].items == {**full, **bugs}, student
    found = mistakes.read_class(graded)
    assert found.notes == [] and found.students == sorted(PLANS)
    assert {(f.student, f.item, f.check, f.mistake) for f in found.findings} == expected_findings()
    assert len(expected_findings()) >= 10


def test_check_records_a_student_forged_are_never_read(graded):
    found = mistakes.read_class(graded)
    assert "forger" not in {f.student for f in found.findings}
    nb = nbformat.read(graded / "autograded" / "forger" / ASSIGNMENT / NOTEBOOK, as_version=4)
    tests = {item.test_id for item in ITEMS.values()}
    stored = [c.metadata[METADATA_KEY][CHECKS] for c in nb.cells
              if c.metadata.get("nbgrader", {}).get("grade_id") in tests]
    assert len(stored) == len(ITEMS)   # the grader's own records, one list per test cell, every sub-check passed
    assert all(r["code"] == "passed" and r["earned"] == r["possible"] for records in stored for r in records)
    assert FORGED not in json.dumps(nb.metadata) and CHECKS not in nb.metadata.get(METADATA_KEY, {})
    forged_copies = [c for c in nb.cells if CHECKS in c.metadata.get(METADATA_KEY, {})
                     and c.metadata.get("nbgrader", {}).get("grade_id") not in tests]
    assert forged_copies == []
