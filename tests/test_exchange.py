"""nbgrader's exchange end to end, as docs/instructors.md's "Real students through nbgrader's exchange" describes it:
release_assignment, fetch_assignment, submit, collect, autograde, generate_feedback, release_feedback,
fetch_feedback, with exact grades and feedback that leaks nothing (slow: a class is graded).

Two students, alice and bob, each with their own home (their exchange cache and nbgrader config) and working
directory, under one UID as on a single-user machine. A third, carol, is graded from a submission copied in by
hand (as from an LMS): release_feedback says in one line that she gets no release, and releases everyone else's.
"""
import os
import shutil
import subprocess

import nbformat
import pytest
from conftest import ASSIGNMENT, BIN, NOTEBOOK, make_course, nbgrader, solution_and_hidden_lines
from graded_course import grade_table

from grading.courses import sample_class
from grading.course import COURSE_ID

pytestmark = pytest.mark.slow
SOLVED = {answer: "solution" for answer in sample_class.ANSWERS}
PLANS = {  # what each exchange student writes, and what they must get (points per item, total, penalty)
    "alice": (SOLVED, ([2, 1, 2, 3, 2], 10, 0)),
    # outputs swapped keeps "outputs" and "inputs unchanged" (0.5 of 2); missing 1/N keeps 1 of 3
    "bob": ({**SOLVED, "multiply_backward": "multiply_outputs_swapped", "nll_grad": "nll_grad_missing_1_over_n"},
            ([0.5, 1, 2, 1, 2], 6.5, 0)),
}


def student_run(home, *args):
    """nbgrader ARGS as a student: their own HOME (config, exchange cache), in their working directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    proc = subprocess.run([str(BIN / "nbgrader"), *args], cwd=home / "work", env=env, text=True,
                          capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def new_student(root, exchange):
    """A student's home with the nbgrader config docs/instructors.md gives students: course id and exchange root."""
    (root / ".jupyter").mkdir(parents=True)
    (root / "work").mkdir()
    (root / ".jupyter" / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = {COURSE_ID!r}\nc.Exchange.root = {str(exchange)!r}\n")
    return root


def answer(notebook, plan, course):
    """Fill the fetched notebook's answer cells as `plan` says (the solution or a bug catalog entry)."""
    solutions = sample_class.solution_sources(course / "source" / ASSIGNMENT / NOTEBOOK)
    bugs = sample_class.bug_catalog()
    answers = {cell: solutions[cell] if what == "solution" else bugs[what].source for cell, what in plan.items()}
    nbformat.write(sample_class.student_notebook(notebook, answers), notebook)


def test_release_fetch_submit_collect_grade_and_return_feedback(tmp_path):
    exchange = tmp_path / "exchange"
    course = make_course(tmp_path / "course")
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.Exchange.root = {str(exchange)!r}\n")
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    nbgrader(course, "release_assignment", ASSIGNMENT)

    homes = {student: new_student(tmp_path / "home" / student, exchange) for student in PLANS}
    for student, (plan, _) in PLANS.items():
        student_run(homes[student], "fetch_assignment", ASSIGNMENT)
        answer(homes[student] / "work" / ASSIGNMENT / NOTEBOOK, plan, course)
        student_run(homes[student], "submit", ASSIGNMENT, f"--student={student}")

    collected = nbgrader(course, "collect", ASSIGNMENT)
    log = collected.stdout + collected.stderr
    for student in PLANS:  # one UID for everyone: nbgrader's owner check fires for each, as docs/instructors.md says
        assert f"claims to be submitted by {student} but is owned by root; cheating attempt?" in log
    shutil.copytree(course / "release" / ASSIGNMENT, course / "submitted" / "carol" / ASSIGNMENT)  # no exchange

    nbgrader(course, "autograde", ASSIGNMENT)
    assert grade_table(course) == {**{s: expected for s, (_, expected) in PLANS.items()},
                                   "carol": ([0, 0, 0, 0, 0], 0, 0)}
    nbgrader(course, "generate_feedback", ASSIGNMENT)
    released = nbgrader(course, "release_feedback", ASSIGNMENT)
    assert "Feedback for carol not released: their submission did not come through the exchange" in released.stderr
    assert len(list((exchange / COURSE_ID / "feedback").glob("*.html"))) == len(PLANS)

    secret = solution_and_hidden_lines()
    for student, (_, (_, total, _)) in PLANS.items():
        student_run(homes[student], "fetch_feedback", ASSIGNMENT, f"--student={student}")
        (page,) = (homes[student] / "work" / ASSIGNMENT / "feedback").glob("*/backprop.html")
        html = page.read_text()
        assert f"(Score: {float(total)} / 10.0)" in html, student
        own = {line.strip() for cell in nbformat.read(homes[student] / "work" / ASSIGNMENT / NOTEBOOK, 4).cells
               for line in cell.source.splitlines()}
        assert not [line for line in secret - own if line in html], student  # only their own code, no tests
        assert "HIDDEN TESTS" not in html and "seeds=" not in html
    bob = next((homes["bob"] / "work" / ASSIGNMENT / "feedback").glob("*/backprop.html")).read_text()
    assert "outputs swapped" in bob and "missing 1/N" in bob
