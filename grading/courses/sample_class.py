"""Build the sample class for `make demo`: submissions made by script from the notebooks, never by hand.

Each student's notebook is the released notebook with some answer cells filled in: with the instructor's
solution (the source notebook's answer cell without its solution markers), with a mistake from the bug
catalog (grading/fixtures/bug_catalog.py), or left as the stub. They land where nbgrader expects them,
submitted/<student>/ex09_backprop/, with the released support files and a timestamp.txt.

Existing submissions are never touched: a submission, once made, is the student's.
"""
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from grading.course import ASSIGNMENT, COURSE_ID, NOTEBOOK
from grading.course_config import gradebook_url
from grading.fixtures.bug_catalog import BUGS
from grading.notebook_items import graded_items

DUE_DATE = datetime(2026, 11, 20, 23, 59, 59, tzinfo=timezone.utc)
ANSWERS = tuple(item.answer_id for item in graded_items())   # the answer cells, read from the notebook

# student id -> (first name, hours after the due date they submitted, {answer cell: what they wrote}).
# What they wrote is "solution", a bug catalog entry name, or absent (the stub, untouched).
SOLVED = {answer: "solution" for answer in ANSWERS}
CLASS = {
    "ada": ("Ada", -30, SOLVED),
    "ben": ("Ben", -2, {}),
    "cleo": ("Cleo", -5, {"multiply_backward": "solution", "sum_backward": "solution",
                          "dot_product_backward": "solution"}),
    "dev": ("Dev", -1, {**SOLVED, "multiply_backward": "multiply_outputs_swapped",
                        "nll_grad": "nll_grad_missing_1_over_n"}),
    "eve": ("Eve", -12, {**SOLVED, "sum_backward": "sum_returns_scalar",
                         "logreg_step": "step_gradient_ascent"}),
    "finn": ("Finn", 9.5, SOLVED),
    # Mistakes that repeat across the class, for the misconception report (grading/reporting/mistakes.py).
    "gus": ("Gus", -20, {**SOLVED, "dot_product_backward": "dot_product_outputs_swapped",
                         "nll_grad": "nll_grad_missing_1_over_n"}),
    "hana": ("Hana", -3, {**SOLVED, "multiply_backward": "multiply_outputs_swapped",
                          "nll_grad": "nll_grad_missing_1_over_n", "logreg_step": "step_b_not_updated"}),
    "ivy": ("Ivy", -7, {**SOLVED, "sum_backward": "sum_d_out_ignored",
                        "dot_product_backward": "dot_product_d_out_ignored", "logreg_step": "step_gradient_ascent"}),
    "jay": ("Jay", -0.5, {**SOLVED, "multiply_backward": "multiply_stale_cache", "nll_grad": "nll_grad_y_minus_probs"}),
    "kai": ("Kai", -40, {"multiply_backward": "multiply_d_out_ignored", "sum_backward": "solution",  # step: the stub
                         "dot_product_backward": "solution", "nll_grad": "nll_grad_missing_1_over_n"}),
}


def bug_catalog():
    """The bug catalog (grading/fixtures/bug_catalog.py), by entry name."""
    return {bug.name: bug for bug in BUGS}


def solution_sources(source_nb):
    """Answer cell id -> the instructor's answer with the solution markers removed."""
    nb = nbformat.read(source_nb, as_version=4)
    return {
        cell.id: "\n".join(line for line in cell.source.splitlines()
                           if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
        for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("solution")
    }


def student_notebook(release_nb, answers):
    """The released notebook with the given answer cells replaced: {cell id: source}."""
    nb = nbformat.read(release_nb, as_version=4)
    for cell in nb.cells:
        if cell.id in answers:
            cell.source = answers[cell.id]
    return nb


def make_submission(course, student, hours_late, plan, solutions, bugs):
    """Write submitted/<student>/ex09_backprop/ unless it exists; return whether it was written."""
    dest = Path(course) / "submitted" / student / ASSIGNMENT
    if dest.exists():
        return False
    release = Path(course) / "release" / ASSIGNMENT
    answers = {cell: solutions[cell] if what == "solution" else bugs[what].source for cell, what in plan.items()}
    tmp = dest.with_name(ASSIGNMENT + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(release, tmp)
    nbformat.write(student_notebook(release / NOTEBOOK, answers), tmp / NOTEBOOK)
    stamp = DUE_DATE + timedelta(hours=hours_late)
    (tmp / "timestamp.txt").write_text(stamp.strftime("%Y-%m-%d %H:%M:%S.%f %Z") + "\n")
    tmp.rename(dest)  # a submission appears whole or not at all
    return True


def register(course, course_id, roster):
    """Put the assignment (with its due date) and the students into the gradebook."""
    with Gradebook(gradebook_url(course), course_id) as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=DUE_DATE.replace(tzinfo=None))
        for student, first_name in roster.items():
            gb.update_or_create_student(student, first_name=first_name, last_name="Sample")


def write_sample_class(course, course_id=COURSE_ID):
    """Write every sample student's submission that is not there yet and register the class in the gradebook of
    `course` (the demo's, never the real class's); returns one line per student on what was written or kept."""
    course = Path(course).resolve()
    solutions = solution_sources(course / "source" / ASSIGNMENT / NOTEBOOK)
    bugs, lines = bug_catalog(), []
    for student, (_, hours_late, plan) in CLASS.items():
        made = make_submission(course, student, hours_late, plan, solutions, bugs)
        described = ", ".join(f"{cell}={what}" for cell, what in plan.items()) or "untouched release"
        lines.append(f"{'wrote' if made else 'kept '} submitted/{student}/{ASSIGNMENT}: {described}"
                     + (f" ({hours_late} h late)" if hours_late > 0 else ""))
    register(course, course_id, {student: first for student, (first, _, _) in CLASS.items()})
    return lines
