"""Hostile and malformed submissions (tests/hostile_catalog.py), graded by the real pipeline.

* The cheat catalog is graded as one class by one `nbgrader autograde` run, together with an honest, fully
  correct student: each cheat earns exactly its honest base's points, no instructor-only line reaches its
  autograded outputs or feedback page, and the gradebook is untouched (the honest student still gets 10, the
  assignment's definition is unchanged, one row per student and grade cell).
* The malformed catalog is graded as one class by `python -m grading.cli.grade_class --workers 1`: the run
  completes, each submission gets zero on what it broke and a one-line problem note in the grade report.
* Nothing is lost: submitted/ is never modified, and killing a class run with SIGKILL and running it again
  leaves a complete gradebook with exactly the grades of the first run.
"""
import html
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import nbformat
import psutil
import pytest

from conftest import ASSIGNMENT, BIN, REPO, nbgrader, solution_and_hidden_lines
from grading.cli import report
from hostile_catalog import CHEATS, MALFORMED, NOTEBOOK, POINTS
from hostile_course import (HONEST, build_class, gradebook_consistency_problems, grades_in_db, hash_tree,
                            instructor_tables, leaked_lines, outputs_of_tests)

pytestmark = pytest.mark.slow

FULL = {gid: float(p) for gid, p in POINTS.items()}
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")  # nbgrader shells out to alembic


def _snapshot(course):
    """What no submission may change: submitted/, the trusted checker and layers, the assignment's definition."""
    return {"submitted": hash_tree(course / "submitted"), "source": hash_tree(course / "source"),
            "nn.py": hash_tree(course)["nn.py"], "config": hash_tree(course)["nbgrader_config.py"],
            "definition": instructor_tables(course)}


def _report_rows(course):
    return {r.student: r for r in report.load_report(course).rows}


def _by_item(expected):
    return {report.short_name(gid): points for gid, points in expected.items()}


class Graded:
    def __init__(self, course, before, log, seconds):
        self.course, self.before, self.log, self.seconds = course, before, log, seconds
        self.grades = grades_in_db(course)
        self.rows = _report_rows(course)
        self.students = sorted(p.name for p in (course / "submitted").iterdir())


@pytest.fixture(scope="module")
def cheat_class(tmp_path_factory):
    course = build_class(tmp_path_factory.mktemp("cheats") / "course", CHEATS)
    before = _snapshot(course)
    start = time.monotonic()
    proc = nbgrader(course, "autograde", ASSIGNMENT, "--force", check=False)
    nbgrader(course, "generate_feedback", ASSIGNMENT, "--force", check=False)  # rejected notebooks have none
    seconds = time.monotonic() - start
    print(f"\ncheat class: {len(CHEATS) + 1} submissions autograded and fed back in {seconds:.0f} s")
    return Graded(course, before, proc.stdout + proc.stderr, seconds)


@pytest.fixture(scope="module")
def malformed_class(tmp_path_factory):
    course = build_class(tmp_path_factory.mktemp("malformed") / "course", MALFORMED)
    before = _snapshot(course)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "grading.cli.grade_class", "--workers", "1"], cwd=course, env=ENV,
                          text=True, capture_output=True, timeout=900)
    nbgrader(course, "generate_feedback", ASSIGNMENT, "--force", check=False)
    seconds = time.monotonic() - start
    print(f"\nmalformed class: {len(MALFORMED) + 1} submissions graded and fed back in {seconds:.0f} s")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Graded(course, before, proc.stdout + proc.stderr, seconds)


def _assert_untouched(graded):
    """The checks every catalog entry shares: the honest student's 10, the gradebook's integrity, no file of the
    course changed."""
    course = graded.course
    assert graded.grades[HONEST] == FULL
    assert graded.rows[HONEST].problem is None
    in_gradebook = [s for s in graded.students if s in graded.grades]
    assert gradebook_consistency_problems(course, in_gradebook) == []
    assert _snapshot(course) == graded.before


def test_the_leak_check_finds_instructor_lines_in_outputs_and_feedback(tmp_path):
    secret = sorted(solution_and_hidden_lines())
    hidden = next(line for line in secret if line.startswith("gradcheck.grade("))
    solution = next(line for line in secret if "d_out * y" in line)
    submitted, autograded, feedback = (tmp_path / d / "x" / ASSIGNMENT for d in ("submitted", "autograded",
                                                                                  "feedback"))
    for folder in (submitted, autograded, feedback):
        folder.mkdir(parents=True)
    new = nbformat.v4
    nbformat.write(new.new_notebook(cells=[new.new_code_cell("print(1)")]), submitted / NOTEBOOK)
    nbformat.write(new.new_notebook(cells=[new.new_code_cell("x", outputs=[
        new.new_output("stream", name="stdout", text=f"got: {hidden}\n")])]), autograded / NOTEBOOK)
    assert leaked_lines(tmp_path, "x") == [hidden]
    # in a feedback page: HTML-escaped and split by syntax highlighting
    page = "".join(f"<span class='n'>{html.escape(word)}</span> " for word in solution.split(" "))
    (feedback / "backprop.html").write_text(f"<pre>{page.rstrip()}</pre>")
    assert leaked_lines(tmp_path, "x") == sorted([hidden, solution])
    # what the student wrote is theirs to see
    nbformat.write(new.new_notebook(cells=[new.new_code_cell(solution)]), submitted / NOTEBOOK)
    assert leaked_lines(tmp_path, "x") == [hidden]


# ---------------------------------------------------------------------------------------------- cheats ----

def test_cheat_class_run_grades_everyone_but_the_rejected_notebooks(cheat_class):
    failed = re.findall(r"error processing assignment '\w+' for student '([^']+)'", cheat_class.log)
    assert sorted(failed) == sorted(e.name for e in CHEATS if e.problem == "not autograded"), cheat_class.log
    assert sorted(cheat_class.grades) == cheat_class.students  # every student has a submission in the gradebook


@pytest.mark.parametrize("entry", CHEATS, ids=lambda e: e.name)
def test_cheat_earns_only_its_honest_work_and_leaks_nothing(cheat_class, entry):
    assert cheat_class.grades[entry.name] == entry.expected
    row = cheat_class.rows[entry.name]
    assert row.items == _by_item(entry.expected) and row.total == sum(entry.expected.values())
    if entry.problem:
        assert entry.problem in (row.problem or ""), row.problem
    assert leaked_lines(cheat_class.course, entry.name) == []
    _assert_untouched(cheat_class)


# ------------------------------------------------------------------------------------------- malformed ----

def test_malformed_class_run_completes_with_a_row_for_everyone(malformed_class):
    assert f"[ {len(MALFORMED) + 1}/{len(MALFORMED) + 1}]" in malformed_class.log, malformed_class.log
    assert sorted(malformed_class.rows) == malformed_class.students
    table = report.format_table(report.load_report(malformed_class.course))
    assert table.splitlines()[0].split()[-1] == "problem"
    for entry in MALFORMED:  # the one-line reason is in the printed table
        line = next(line for line in table.splitlines() if line.startswith(entry.name + " "))
        assert entry.problem is None or entry.problem in line, line


@pytest.mark.parametrize("entry", MALFORMED, ids=lambda e: e.name)
def test_malformed_gets_zero_on_what_it_broke_with_a_reason(malformed_class, entry):
    row = malformed_class.rows[entry.name]
    assert row.items == _by_item(entry.expected) and row.score == sum(entry.expected.values())
    if entry.name in malformed_class.grades:  # nbgrader recorded the submission (not so without any notebook)
        assert malformed_class.grades[entry.name] == entry.expected
    if entry.problem is None:
        assert row.problem is None
    else:
        assert entry.problem in (row.problem or ""), row.problem
        assert "\n" not in row.problem and len(row.problem) < 400
    assert leaked_lines(malformed_class.course, entry.name) == []
    _assert_untouched(malformed_class)


def test_honest_student_is_graded_the_same_whatever_the_class(cheat_class, malformed_class):
    assert outputs_of_tests(cheat_class.course, HONEST) == outputs_of_tests(malformed_class.course, HONEST)


# ------------------------------------------------------------------------------------------ nothing lost ----

def _sandboxes_of(pid):
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if p.name() == "bwrap"]
    except psutil.Error:
        return []


def test_sigkill_mid_class_then_rerun_gives_the_same_complete_gradebook(malformed_class, tmp_path):
    course = tmp_path / "course"
    shutil.copytree(malformed_class.course, course, symlinks=True)
    before = grades_in_db(course)
    submitted = hash_tree(course / "submitted")
    students = ["segfault", "invalid-json"]  # a kernel death with a restart, and a file nbgrader cannot read
    command = [sys.executable, "-m", "grading.cli.grade_class", "--workers", "1",
               *[arg for s in students for arg in ("--student", s)]]
    proc = subprocess.Popen(command, cwd=course, env=ENV, text=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _sandboxes_of(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # well into the first notebook
        kernels = _sandboxes_of(proc.pid)
        assert proc.poll() is None and kernels, "the run was not grading when it was killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    gone, alive = psutil.wait_procs(kernels, timeout=15)
    assert not alive, f"sandboxed kernels outlived the killed run: {alive}"

    rerun = subprocess.run(command, cwd=course, env=ENV, text=True, capture_output=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "graded 1/2 submissions" in rerun.stdout, rerun.stdout
    assert grades_in_db(course) == before
    assert gradebook_consistency_problems(course, sorted(before)) == []
    rows = _report_rows(course)
    assert {s: rows[s].problem for s in students} == {s: malformed_class.rows[s].problem for s in students}
    assert hash_tree(course / "submitted") == submitted


# ------------------------------------------------------------------------------------------------ config ----

def test_repository_config_sanitizes_with_grading_sanitize():
    """The catalog courses use the repository's nbgrader_config.py, so the catalogs prove what instructors get:
    it must sanitize with grading/plugins/sanitize.py."""
    config = (REPO / "nbgrader_config.py").read_text()
    assert "grading.plugins.sanitize.DeduplicateIds" in config and "grading.plugins.sanitize.CheckCellMetadata" in config, (
        "c.Autograde.sanitize_preprocessors in nbgrader_config.py must use grading.plugins.sanitize")
