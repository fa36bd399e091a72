"""The sample class of `make demo`, graded once per test session by the same commands `make demo` runs:
grading/courses/demo_course.py (course files, generate_assignment, grading/courses/sample_class.py),
grading/cli/grade_class.py (2 workers), generate_feedback, export. The pipeline, report and feedback-page
tests all read this one graded course.

Use it from a test module with `from graded_course import graded_course  # noqa: F401` (a pytest fixture).
"""
import hashlib
import shutil
import subprocess
import sys

import nbformat
import pytest
from nbgrader.api import Gradebook

from conftest import ASSIGNMENT, NOTEBOOK, write_test_secret, nbgrader
from grading.reporting import grades as report
from grading.courses import sample_class
from grading.courses.demo_course import make_demo_course
from grading.course_config import course_directory
from grading.course import COURSE_ID
from grading.notebook_items import graded_items

STUDENTS = sorted(sample_class.CLASS)
LATE_STUDENTS = sorted(s for s, (_, hours_late, _) in sample_class.CLASS.items() if hours_late > 0)
UNTOUCHED, CORRECT = "ben", "ada"

# The report's columns and each item's full points, from the notebook (grading/notebook_items.py).
FULL = {report.short_name(item.test_id): item.points for item in graded_items()}
ITEMS = list(FULL)
MAX_SCORE = sum(FULL.values())


def expected(points, late_share=0.0):
    """(points per item in ITEMS order, total, late penalty): the items not named earn nothing."""
    per_item = [points.get(item, 0.0) for item in ITEMS]
    return per_item, sum(per_item), sum(per_item) * late_share


# The sample class (grading/courses/sample_class.py) and what each student must get.
# dev: Multiply outputs swapped (keeps "outputs" and "inputs unchanged": 0.5 of 2), nll_grad missing 1/N
# (keeps "outputs" and "inputs unchanged": 1 of 3); eve: Sum returns a scalar (0 of 1), step does gradient
# ascent (keeps "loss before update" and "inputs unchanged": 0.75 of 2); finn: all right, 9.5 h late (-10 %).
EXPECTED = {
    "ada": expected(FULL),
    "ben": expected({}),
    "cleo": expected({item: FULL[item] for item in ("multiply", "sum", "dot_product")}),
    "dev": expected({**FULL, "multiply": 0.5, "nll_grad": 1}),
    "eve": expected({**FULL, "sum": 0, "logreg_step": 0.75}),
    "finn": expected(FULL, late_share=0.1),
    # Mistakes that repeat across the class (the misconception report), each item at its catalog entry's points:
    # gus: DotProduct outputs swapped 0.5, nll_grad missing 1/N 1; hana: Multiply outputs swapped 0.5, missing
    # 1/N 1, step forgets b 1.5; ivy: Sum d_out ignored 0.375, DotProduct d_out ignored 0.5, gradient ascent 0.75;
    # jay: Multiply stale cache 1.5, nll_grad Y - P (sign flipped) 1; kai: Multiply d_out ignored 0.5, missing
    # 1/N 1, step left as the stub 0.
    "gus": expected({**FULL, "dot_product": 0.5, "nll_grad": 1}),
    "hana": expected({**FULL, "multiply": 0.5, "nll_grad": 1, "logreg_step": 1.5}),
    "ivy": expected({**FULL, "sum": 0.375, "dot_product": 0.5, "logreg_step": 0.75}),
    "jay": expected({**FULL, "multiply": 1.5, "nll_grad": 1}),
    "kai": expected({**FULL, "multiply": 0.5, "nll_grad": 1, "logreg_step": 0}),
}


def grade_table(course):
    """{student: (points per item in ITEMS order, total, penalty)} from the course's gradebook."""
    return {r.student: ([r.items[i] for i in ITEMS], r.total, r.penalty) for r in report.load_report(course).rows}


def gradebook_contents(course, assignment=ASSIGNMENT):
    """Everything the gradebook (wherever the course's db_url points) holds on the submissions of `assignment`:
    {student: {"timestamp", "extension", "duedate", notebook: {"penalty", "flagged", cell: (auto_score,
    manual_score, extra_credit, needs_manual_grade) or (auto_comment, manual_comment)}}}."""
    coursedir = course_directory(course)
    contents = {}
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        for sub in gb.assignment_submissions(assignment):
            entry = {"timestamp": sub.timestamp, "extension": sub.extension, "duedate": sub.duedate}
            for nb in sub.notebooks:
                cells = {"penalty": nb.late_submission_penalty, "flagged": nb.flagged}
                cells.update({f"grade {g.name}": (g.auto_score, g.manual_score, g.extra_credit,
                                                  g.needs_manual_grade) for g in nb.grades})
                cells.update({f"comment {c.name}": (c.auto_comment, c.manual_comment) for c in nb.comments})
                entry[nb.name] = cells
            contents[sub.student.id] = entry
    return contents


def normalized_notebook(path):
    """An autograded notebook as JSON, each cell's consecutive stream outputs of one name joined (stdout arrives
    in chunks that depend on timing)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        joined = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and joined and joined[-1].output_type == "stream" \
                    and joined[-1].name == out.name:
                joined[-1].text += out.text
            else:
                joined.append(out)
        if "outputs" in cell:
            cell.outputs = joined
    return nbformat.writes(nb)


def run(course, *args, timeout=900):
    """Run `python -m <args>` in the course (as the Makefile does) and return its stdout."""
    proc = subprocess.run([sys.executable, "-m", *args], cwd=course, text=True, capture_output=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def make_class(root, db_url=None):
    """A course with the release generated and the sample class submitted and registered, as `make demo` makes
    its demo/ course (its gradebook at `db_url`, default gradebook.db); with the tests' course secret, so two
    such courses draw the same hidden inputs."""
    course = make_demo_course(root, db_url=db_url)
    write_test_secret(course)
    return course


def submit(course, student, answers=None, notebook_bytes=None):
    """submitted/<student>/<ASSIGNMENT>/: the release with answer cells replaced ({cell id: source}), or with
    the notebook's bytes given outright; the student is registered in the gradebook."""
    dest = course / "submitted" / student / ASSIGNMENT
    shutil.copytree(course / "release" / ASSIGNMENT, dest)
    if notebook_bytes is not None:
        (dest / NOTEBOOK).write_bytes(notebook_bytes)
    else:
        nbformat.write(sample_class.student_notebook(dest / NOTEBOOK, answers or {}), dest / NOTEBOOK)
    sample_class.register(course, COURSE_ID, {student: student.title()})
    return dest


def tree_digest(folder):
    """One hash of every file's path and bytes below `folder`."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


_built = {}


@pytest.fixture(scope="session")
def graded_course(tmp_path_factory):
    """The sample class after `make demo`'s steps; also keeps the grading log and submitted/'s digest."""
    if "course" not in _built:
        course = make_class(tmp_path_factory.mktemp("demo") / "course")
        before = tree_digest(course / "submitted")
        log = run(course, "grading.cli.grade_class", "--workers", "2")
        nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
        (course / "reports").mkdir(exist_ok=True)
        nbgrader(course, "export", "--to", "reports/grades.csv")
        _built.update(course=course, log=log, submitted_digest=before)
    return _built["course"]


def grading_log():
    return _built["log"]


def submitted_digest():
    return _built["submitted_digest"]
