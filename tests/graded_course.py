"""The sample class of `make demo`, graded once per test session by the same commands `make demo` runs:
generate_assignment, grading/cli/sample_class.py, grading/cli/grade_class.py (2 Dask workers), generate_feedback,
export. The pipeline, report and feedback-page tests all read this one graded course.

Use it from a test module with `from graded_course import graded_course  # noqa: F401` (a pytest fixture).
"""
import hashlib
import shutil
import subprocess
import sys

import pytest

from conftest import ASSIGNMENT, REPO, make_course, nbgrader
from grading.cli import sample_class

STUDENTS = sorted(sample_class.CLASS)
LATE_STUDENTS = sorted(s for s, (_, hours_late, _) in sample_class.CLASS.items() if hours_late > 0)
UNTOUCHED, CORRECT = "ben", "ada"


def run(course, *args, timeout=900):
    """Run `python -m <args>` in the course (as the Makefile does) and return its stdout."""
    proc = subprocess.run([sys.executable, "-m", *args], cwd=course, text=True, capture_output=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def make_class(root):
    """A course with the release generated and the sample class submitted and registered."""
    course = make_course(root)
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    run(course, "grading.cli.sample_class")
    return course


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
