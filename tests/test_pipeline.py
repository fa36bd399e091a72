"""`make demo`'s pipeline on the sample class: exact grades, CSV, feedback that leaks nothing, idempotence,
and the parallel class command agreeing with plain sequential `nbgrader autograde` (slow: whole-class runs)."""
import csv
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading

import nbformat
import psutil
import pytest

from conftest import ASSIGNMENT, NOTEBOOK, nbgrader, solution_and_hidden_lines
from graded_course import (EXPECTED, ITEMS, MAX_SCORE, STUDENTS, grade_table, graded_course, gradebook_contents,  # noqa: F401
                           grading_log, make_class, normalized_notebook, run, submitted_digest, tree_digest)

pytestmark = pytest.mark.slow
FEEDBACK = NOTEBOOK.replace(".ipynb", ".html")  # nbgrader generate_feedback's page for the notebook


def test_every_student_and_item_gets_the_exact_expected_score(graded_course):
    assert grade_table(graded_course) == EXPECTED


def test_progress_names_each_student_with_count_and_time():
    log = grading_log()
    for student in STUDENTS:
        assert any(f"] {student} " in line and "graded in" in line and "left, ETA" in line
                   for line in log.splitlines()), log
    n = len(STUDENTS)
    assert f"[{n:3d}/{n}]" in log and f"graded {n}/{n} submissions" in log


def test_exported_csv_has_the_final_scores(graded_course):
    with open(graded_course / "reports" / "grades.csv") as fh:
        rows = {r["student_id"]: r for r in csv.DictReader(fh)}
    assert sorted(rows) == STUDENTS
    for student, (_, total, penalty) in EXPECTED.items():
        row = rows[student]
        assert (float(row["raw_score"]), float(row["late_submission_penalty"]), float(row["score"]),
                float(row["max_score"])) == (total, penalty, total - penalty, MAX_SCORE), student


def test_feedback_shows_diagnoses_and_no_instructor_only_line(graded_course):
    secret = solution_and_hidden_lines()
    for student in STUDENTS:
        page = (graded_course / "feedback" / student / ASSIGNMENT / FEEDBACK).read_text()
        own = set(line.strip() for c in nbformat.read(graded_course / "submitted" / student / ASSIGNMENT /
                                                       NOTEBOOK, as_version=4).cells
                  for line in c.source.splitlines())
        # A student's own code is theirs to see, even where it matches the solution.
        leaked = [line for line in secret - own if line in page]
        assert not leaked, (student, leaked)
        assert "HIDDEN TESTS" not in page and "seeds=" not in page
    dev = (graded_course / "feedback" / "dev" / ASSIGNMENT / FEEDBACK).read_text()
    assert "outputs swapped" in dev and "missing 1/N" in dev


def test_submitted_is_never_modified(graded_course):
    assert tree_digest(graded_course / "submitted") == submitted_digest()


def test_a_rerun_grades_only_what_changed(graded_course, tmp_path):
    course = tmp_path / "course"
    shutil.copytree(graded_course, course, symlinks=True)
    before = gradebook_contents(course)
    log = run(course, "grading.cli.grade_class", "--workers", "2")
    assert f"{len(STUDENTS)} submission(s) already graded and unchanged: skipped" in log, log
    assert "graded 0/0 submissions" in log, log
    # A resubmission (the same answers, a later time) and an interrupted grading (its notebook gone) are graded.
    (course / "submitted" / "ada" / ASSIGNMENT / "timestamp.txt").write_text("2026-11-01 12:00:00.000000 UTC\n")
    (course / "autograded" / "eve" / ASSIGNMENT / NOTEBOOK).unlink()
    log = run(course, "grading.cli.grade_class", "--workers", "2")
    assert f"{len(STUDENTS) - 2} submission(s) already graded and unchanged" in log, log
    assert "] ada " in log and "] eve " in log and "graded 2/2 submissions" in log, log
    after = gradebook_contents(course)
    assert after["ada"]["timestamp"] < before["ada"]["timestamp"]
    assert {s: v for s, v in after.items() if s != "ada"} == {s: v for s, v in before.items() if s != "ada"}


def test_regrading_gives_identical_grades_and_no_duplicate_rows(graded_course):
    before = grade_table(graded_course)
    run(graded_course, "grading.cli.grade_class", "--workers", "2", "--force", "--student", "dev", "--student", "finn")
    assert grade_table(graded_course) == before
    with sqlite3.connect(graded_course / "gradebook.db") as db:
        (grades,) = db.execute("select count(*) from grade").fetchone()
        (submissions,) = db.execute("select count(*) from submitted_assignment").fetchone()
    assert submissions == len(STUDENTS) and grades == len(STUDENTS) * len(ITEMS)  # one row per test cell
    assert tree_digest(graded_course / "submitted") == submitted_digest()


def test_plain_sequential_nbgrader_autograde_gives_the_same_grades(graded_course, tmp_path):
    course = make_class(tmp_path / "sequential")
    # The same course secret, as when a course moves with its gradebook: the same hidden inputs per submission.
    shutil.copy(graded_course / "seed_secret", course / "seed_secret")
    nbgrader(course, "autograde", ASSIGNMENT, "--force")
    assert grade_table(course) == grade_table(graded_course)
    # Every gradebook value (grades, comments, penalties, timestamps, needs_manual_grade) and every autograded file.
    assert gradebook_contents(course) == gradebook_contents(graded_course)
    for student in STUDENTS:
        ours, theirs = (c / "autograded" / student / ASSIGNMENT for c in (graded_course, course))
        assert sorted(p.name for p in ours.iterdir()) == sorted(p.name for p in theirs.iterdir()), student
        for path in ours.iterdir():
            if path.suffix == ".ipynb":
                assert normalized_notebook(path) == normalized_notebook(theirs / path.name), (student, path.name)
            else:
                assert path.read_bytes() == (theirs / path.name).read_bytes(), (student, path.name)
            assert path.stat().st_mode == (theirs / path.name).stat().st_mode, (student, path.name)
    for student in ["dev", "eve"]:
        ours, theirs = (nbformat.read(c / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)
                        for c in (graded_course, course))
        assert shown(ours) == shown(theirs), student


def shown(nb):
    """Each cell's outputs as a reader sees them (stdout arrives in chunks that depend on timing)."""
    cells = []
    for cell in nb.cells:
        outputs = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and outputs and outputs[-1][0] == ("stream", out.name):
                outputs[-1] = (("stream", out.name), outputs[-1][1] + out.text)
            elif out.output_type == "stream":
                outputs.append((("stream", out.name), out.text))
            else:
                outputs.append(((out.output_type,), out.get("data") or out.get("evalue")))
        cells.append(outputs)
    return cells


def test_a_killed_worker_loses_no_submission(tmp_path):
    course = make_class(tmp_path / "killed")
    proc = subprocess.Popen([sys.executable, "-m", "grading.cli.grade_class", "--workers", "2",
                             "--student", "ada", "--student", "dev", "--student", "eve"],
                            cwd=course, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = []

    def kill_a_worker():
        # Each worker process is a descendant of the run; kill one that is busy grading.
        while not killed and proc.poll() is None:
            workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if _runs_a_kernel(p)]
            if workers:
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
            threading.Event().wait(0.5)

    threading.Thread(target=kill_a_worker, daemon=True).start()
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    assert killed, "no worker was found busy grading"
    assert "graded 3/3 submissions" in out, out
    table = grade_table(course)
    assert {s: table[s] for s in ["ada", "dev", "eve"]} == {s: EXPECTED[s] for s in ["ada", "dev", "eve"]}


def test_a_class_run_killed_midway_loses_no_finished_grade(tmp_path):
    """SIGKILL to the whole run (coordinator, workers, kernels) after three progress lines: those three are
    committed, the rerun grades only the others, and the gradebook ends complete and exact."""
    course = make_class(tmp_path / "interrupted")
    command = [sys.executable, "-m", "grading.cli.grade_class", "--workers", "2"]
    proc = subprocess.Popen(command, cwd=course, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    finished = []
    try:
        for line in proc.stdout:
            if "graded in" in line:
                finished.append(line.split("]")[1].split()[0])
            if len(finished) == 3:
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert len(finished) == 3
    rerun = run(course, *command[2:])
    graded_again = [line.split("]")[1].split()[0] for line in rerun.splitlines() if "graded in" in line]
    assert not set(finished) & set(graded_again), rerun
    assert len(graded_again) + int(rerun.split(" submission(s) already graded")[0].split()[-1]) == len(STUDENTS)
    assert grade_table(course) == EXPECTED


def _runs_a_kernel(process):
    """A worker busy grading has a sandboxed kernel (bwrap) as its child."""
    try:
        return process.name() != "bwrap" and any(c.name() == "bwrap" for c in process.children())
    except psutil.Error:
        return False
