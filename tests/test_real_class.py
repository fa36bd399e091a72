"""The real class next to the demo, in one clone: `make demo` grades its sample class in demo/ and nowhere else,
and the real-class targets grade the repository's course with the due date of nbgrader_config.py, recomputing
stored penalties when that date changes (slow: `make demo`, then real autogrades, all through make); and
`make venv` reinstalls only when the pins change (fast)."""
import csv
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
from datetime import datetime

import nbformat
import pytest
from conftest import ASSIGNMENT, NOTEBOOK, REPO
from graded_course import EXPECTED, grade_table

from grading.courses import sample_class

REAL_DUE = "2026-12-01 12:00:00 UTC"
LATER_DUE = "2026-12-03 12:00:00 UTC"
# The real class: both solve everything; rita hands in on time, sam 30 h after REAL_DUE (2 started days: -20 %).
REAL_STUDENTS = {"rita": "2026-12-01 09:00:00.000000 UTC", "sam": "2026-12-02 18:00:00.000000 UTC"}


def clone(dest):
    """The repository's files as a fresh clone has them (tracked and new, not ignored), next to this checkout's
    existing .venv."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    (dest / ".venv").symlink_to((REPO / ".venv").resolve())
    return dest


def current_stamp(course):
    """A venv stamp saying the venv was installed from the clone's pins, as `make venv` writes it (the shared
    .venv's own stamp is not the tests' to write)."""
    pins = b"".join((course / name).read_bytes() for name in ("requirements.txt", "constraints.txt", "pyproject.toml"))
    stamp = course.parent / "venv-stamp"
    stamp.write_text(hashlib.sha256(pins).hexdigest() + "\n")
    return stamp


def make(course, *targets, **variables):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    assignments = [f"{name}={value}" for name, value in {"WORKERS": 2, **variables}.items()]
    proc = subprocess.run(["make", *targets, *assignments], cwd=course, env=env, text=True, capture_output=True,
                          timeout=1800, check=False)
    assert proc.returncode == 0, f"make {' '.join(targets)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def set_due_date(course, due):
    config = course / "nbgrader_config.py"
    text, count = re.subn(r"(?m)^c\.DueDate\.due_date = .*$", f"c.DueDate.due_date = {due!r}", config.read_text())
    assert count == 1, "nbgrader_config.py must set c.DueDate.due_date exactly once"
    config.write_text(text)


def submit(course, student, stamp):
    """submitted/<student>/<ASSIGNMENT>/ as nbgrader collect leaves it: every answer solved, with its timestamp."""
    dest = course / "submitted" / student / ASSIGNMENT
    shutil.copytree(course / "release" / ASSIGNMENT, dest)
    solutions = sample_class.solution_sources(course / "source" / ASSIGNMENT / NOTEBOOK)
    nbformat.write(sample_class.student_notebook(dest / NOTEBOOK, solutions), dest / NOTEBOOK)
    (dest / "timestamp.txt").write_text(stamp + "\n")


def gradebook(course):
    """(student ids, the assignment's due date) of the course's gradebook."""
    with sqlite3.connect(course / "gradebook.db") as db:
        students = {row[0] for row in db.execute("select id from student")}
        (due,) = db.execute("select duedate from assignment where name = ?", (ASSIGNMENT,)).fetchone()
    return students, due and datetime.fromisoformat(due)


def tree(course):
    """{path: bytes} of everything in the clone but the demo and the real class's outputs."""
    skip = {".venv", "demo", "submitted", "autograded", "feedback", "reports", "gradebook.db", "__pycache__"}
    build_copy = course / "source" / ASSIGNMENT / "nn.py"  # made by `make release`, git-ignored
    return {str(p.relative_to(course)): p.read_bytes() for p in sorted(course.rglob("*"))
            if p.is_file() and p != build_copy and not skip & set(p.relative_to(course).parts)}


@pytest.mark.slow
def test_demo_then_real_class_in_one_clone(tmp_path):
    course = clone(tmp_path / "clone")
    set_due_date(course, REAL_DUE)  # the instructor's date, which the demo must not use
    before = tree(course)

    log = make(course, "demo", VENV_STAMP=current_stamp(course))
    assert "installing the pinned requirements" not in log  # an existing, current .venv is kept
    assert grade_table(course / "demo") == EXPECTED
    assert tree(course) == before  # no release regenerated, no config or source touched
    assert not any((course / name).exists() for name in ("gradebook.db", "submitted", "feedback", "reports"))
    assert [p.name for p in (course / "autograded").iterdir()] == ["README.md"]

    # The instructor's own step: puts the assignment into the real gradebook.
    make(course, "release", VENV_STAMP=current_stamp(course))
    assert tree(course) == before  # the committed release is what generate_assignment makes
    for student, stamp in REAL_STUDENTS.items():
        submit(course, student, stamp)
    make(course, "autograde", "feedback", "export", "report", VENV_STAMP=current_stamp(course))
    students, due = gradebook(course)
    assert students == set(REAL_STUDENTS)  # no sample student
    assert due == datetime(2026, 12, 1, 12)  # the configured date, not the demo's
    full = [2, 1, 2, 3, 2]
    assert grade_table(course) == {"rita": (full, 10, 0), "sam": (full, 10, 2)}
    assert (course / "feedback" / "sam" / ASSIGNMENT / "backprop.html").is_file()

    set_due_date(course, LATER_DUE)  # sam is on time now: the stored penalty must not stay
    make(course, "autograde", "export", VENV_STAMP=current_stamp(course))
    assert gradebook(course)[1] == datetime(2026, 12, 3, 12)
    assert grade_table(course) == {"rita": (full, 10, 0), "sam": (full, 10, 0)}
    with open(course / "reports" / "grades.csv") as fh:
        rows = {row["student_id"]: row for row in csv.DictReader(fh)}
    assert (float(rows["sam"]["late_submission_penalty"]), float(rows["sam"]["score"])) == (0, 10)
    assert grade_table(course / "demo") == EXPECTED  # and the demo kept its own grades


def test_make_venv_reinstalls_only_when_the_pins_change(tmp_path):
    course = clone(tmp_path / "clone")
    stamp = current_stamp(course)
    # PYTHON=false: any attempt to build or install fails loudly instead of touching the shared .venv.
    # --no-print-directory: under `make test` this make is a sub-make, which would announce its directory.
    make_venv = ["make", "--no-print-directory", "venv", f"VENV_STAMP={stamp}", "PYTHON=false", "VENV=no-venv"]
    kept = subprocess.run(make_venv, cwd=course,
                          text=True, capture_output=True, check=False)
    assert (kept.returncode, kept.stdout.strip()) == (0, "")
    stamp.write_text("digest of older pins\n")
    changed = subprocess.run(make_venv, cwd=course,
                             text=True, capture_output=True, check=False)
    assert changed.returncode != 0 and "installing the pinned requirements" in changed.stdout
