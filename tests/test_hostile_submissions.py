"""Hostile and malformed submissions (tests/hostile_catalog.py), graded by the real pipeline.

* The cheat catalog is graded as one class by one `nbgrader autograde` run, together with an honest, fully
  correct student: each cheat earns exactly its honest base's points, no instructor-only line reaches its
  autograded outputs or feedback page, and the gradebook is untouched (the honest student still gets 10, the
  assignment's definition is unchanged, one row per student and grade cell).
* The malformed catalog is graded as one class by `python -m grading.cli.grade_class --workers 1`: the run
  completes, each submission gets zero on what it broke and a one-line problem note in the grade report.
* Nothing is lost: submitted/ is never modified, and killing a class run with SIGKILL and running it again
  leaves a complete gradebook with exactly the grades of the first run.
* Feedback: `nbgrader generate_feedback` writes a page for every autograded student (a hidden-test marker in an
  answer included) and exits 0; no page holds anything live; `make feedback` (grading.cli.feedback) names a
  student whose page cannot be written and carries on.
* The pathological catalog (the grader's own budgets, issue 21.5) is graded by `grading.cli.grade_class`, fed
  back by `make feedback` (grading.cli.feedback) and reported by `make report` (grading.cli.report), then the big
  cell's student again by plain `nbgrader autograde` and `generate_feedback` (formgrader's buttons run the same
  converters): each costs its student one problem line and nothing else; every other student's grade, feedback
  page and report row are the honest student's.
* The intake catalog is graded twice, by `nbgrader autograde` and by `grading.cli.grade_class --workers 2`: each
  entry is refused whole with its reason (the control entry is graded), and no pipe planted in a submission or
  behind one of its links is ever opened -- by grading, feedback or the report.
"""
import html
import json
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
from nbgrader.api import Gradebook

from conftest import ASSIGNMENT, BIN, REPO, nbgrader, solution_and_hidden_lines
from grading.course import COURSE_ID, PROBLEMS_FILE
from grading.reporting import grades as report
from hostile_catalog import CHEATS, INTAKE, MALFORMED, NOTEBOOK, PATHOLOGICAL, POINTS
from hostile_course import (HONEST, LIVE_MARKUP, PipeWatch, build_class, gradebook_consistency_problems,
                            grades_in_db, hash_tree, instructor_tables, leaked_lines, outputs_of_tests)

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
    def __init__(self, course, before, log, seconds, feedback=None):
        self.course, self.before, self.log, self.seconds, self.feedback = course, before, log, seconds, feedback
        self.grades = grades_in_db(course)
        self.rows = _report_rows(course)
        self.students = sorted(p.name for p in (course / "submitted").iterdir())


@pytest.fixture(scope="module")
def cheat_class(tmp_path_factory):
    course = build_class(tmp_path_factory.mktemp("cheats") / "course", CHEATS)
    before = _snapshot(course)
    start = time.monotonic()
    proc = nbgrader(course, "autograde", ASSIGNMENT, "--force", check=False)
    feedback = nbgrader(course, "generate_feedback", ASSIGNMENT, "--force", check=False)  # rejected: none
    seconds = time.monotonic() - start
    print(f"\ncheat class: {len(CHEATS) + 1} submissions autograded and fed back in {seconds:.0f} s")
    return Graded(course, before, proc.stdout + proc.stderr, seconds, feedback)


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
    # the course secret, printed by a kernel that could read it
    (tmp_path / "seed_secret").write_text("c0ffee" * 8 + "\n")
    nbformat.write(new.new_notebook(cells=[new.new_code_cell("x", outputs=[
        new.new_output("stream", name="stdout", text="read ../seed_secret: " + "c0ffee" * 8)])]), autograded / NOTEBOOK)
    assert leaked_lines(tmp_path, "x") == ["c0ffee" * 8]


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


def test_forged_grader_notes_never_reach_the_report(cheat_class):
    assert cheat_class.rows["forged-notes"].problem is None
    assert "FORGED" not in report.format_table(report.load_report(cheat_class.course))


def _pages(course):
    return sorted(p.parents[1].name for p in (course / "feedback").glob(f"*/{ASSIGNMENT}/{NOTEBOOK[:-6]}.html"))


def _autograded(course):
    return sorted(p.parents[1].name for p in (course / "autograded").glob(f"*/{ASSIGNMENT}/{NOTEBOOK}"))


def test_feedback_is_written_for_every_autograded_student(cheat_class):
    assert cheat_class.feedback.returncode == 0, cheat_class.feedback.stdout + cheat_class.feedback.stderr
    assert _pages(cheat_class.course) == _autograded(cheat_class.course)
    assert "hidden-marker" in _pages(cheat_class.course)


def test_no_feedback_page_holds_anything_live(cheat_class):
    for student in _pages(cheat_class.course):
        head, body = (cheat_class.course / "feedback" / student / ASSIGNMENT / "backprop.html").read_text().split(
            "</head>", 1)
        assert 'http-equiv="Content-Security-Policy"' in head, student
        assert re.findall(r"<script[^>]*>", head) == ['<script src="../../mathjax/config.js">',
                                                      '<script src="../../mathjax/tex-svg-full.js">'], student
        assert head.index("Content-Security-Policy") < head.index("<script"), student
        assert not LIVE_MARKUP.search(body), (student, LIVE_MARKUP.search(body))


def test_make_feedback_names_a_failing_student_and_carries_on(cheat_class, tmp_path):
    recipe = (REPO / "Makefile").read_text().split("\nfeedback:", 1)[1].split("\n\n", 1)[0]
    assert "grading.cli.feedback" in recipe  # what `make feedback` runs
    course = tmp_path / "course"
    shutil.copytree(cheat_class.course, course, symlinks=True)
    shutil.rmtree(course / "feedback")
    (course / "autograded" / "showtraceback" / ASSIGNMENT / NOTEBOOK).write_text("{ cut short")
    proc = subprocess.run([sys.executable, "-m", "grading.cli.feedback"], cwd=course, env=ENV, text=True,
                          capture_output=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    others = [s for s in _autograded(course) if s != "showtraceback"]
    assert _pages(course) == others
    assert f"feedback: {len(others)}/{len(others) + 1} pages" in proc.stdout
    failure = [line for line in proc.stdout.splitlines() if "showtraceback" in line]
    assert len(failure) == 1 and failure[0].startswith("  no feedback for showtraceback: "), proc.stdout


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


# ---------------------------------------------------------------------------------------------- intake ----

INTAKE_RUNS = {
    "nbgrader autograde": lambda course: nbgrader(course, "autograde", ASSIGNMENT, "--force", check=False),
    "grade_class --workers 2": lambda course: subprocess.run(
        [sys.executable, "-m", "grading.cli.grade_class", "--workers", "2"], cwd=course, env=ENV, text=True,
        capture_output=True, timeout=900),
}


@pytest.fixture(scope="module", params=list(INTAKE_RUNS))
def intake_class(request, tmp_path_factory):
    """The intake catalog graded one way or the other, then `make feedback`'s step and the report, all while
    every planted pipe is watched."""
    course = build_class(tmp_path_factory.mktemp("intake") / "course", INTAKE)
    before = _snapshot(course)
    start = time.monotonic()
    with PipeWatch(course / "submitted", course.parent / "outside") as watch:
        proc = INTAKE_RUNS[request.param](course)
        feedback = subprocess.run([sys.executable, "-m", "grading.cli.feedback"], cwd=course, env=ENV, text=True,
                                  capture_output=True, timeout=900)
        graded = Graded(course, before, proc.stdout + proc.stderr, time.monotonic() - start, feedback)
    print(f"\nintake class ({request.param}): {len(INTAKE) + 1} submissions in {graded.seconds:.0f} s")
    graded.run, graded.returncode, graded.watch = request.param, proc.returncode, watch
    return graded


REFUSED_ENTRIES = [e for e in INTAKE if e.problem]


def test_intake_class_run_completes(intake_class):
    if intake_class.run == "nbgrader autograde":  # nbgrader's per-student failures
        refused = re.findall(r"error processing assignment '\w+' for student '([^']+)'", intake_class.log)
    else:  # grade_class completes, with one FAILED line per refused student, each in autograded/problems.json
        assert intake_class.returncode == 0, intake_class.log
        refused = re.findall(r"\] (\S+) +FAILED: ", intake_class.log)
        assert f"[ {len(INTAKE) + 1}/{len(INTAKE) + 1}]" in intake_class.log
        recorded = json.loads((intake_class.course / "autograded" / "problems.json").read_text())
        assert sorted(recorded) == sorted(e.name for e in REFUSED_ENTRIES)
        assert all(e.problem in recorded[e.name] and "\n" not in recorded[e.name] for e in REFUSED_ENTRIES)
    assert sorted(refused) == sorted(e.name for e in REFUSED_ENTRIES), intake_class.log
    assert _autograded(intake_class.course) == ["nested-files", HONEST]  # nothing at all of a refused one
    assert intake_class.feedback.returncode == 0 and _pages(intake_class.course) == ["nested-files", HONEST]
    assert sorted(intake_class.rows) == intake_class.students


@pytest.mark.parametrize("entry", INTAKE, ids=lambda e: e.name)
def test_intake_entry_is_refused_whole_with_its_reason(intake_class, entry):
    row = intake_class.rows[entry.name]
    assert row.items == _by_item(entry.expected) and row.score == sum(entry.expected.values())
    if entry.problem:
        assert entry.name not in intake_class.grades  # refused before nbgrader recorded anything
        assert row.problem == f"could not be autograded: {entry.problem}"
    else:
        assert intake_class.grades[entry.name] == entry.expected and row.problem is None
    assert leaked_lines(intake_class.course, entry.name) == []
    _assert_untouched(intake_class)


def test_intake_opens_no_planted_pipe(intake_class):
    assert len(intake_class.watch.pipes) == 3  # in a submission, behind a link, as a linked folder's notebook
    assert intake_class.watch.opened == set()


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
    command = [sys.executable, "-m", "grading.cli.grade_class", "--workers", "1", "--force",
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
    assert ("grading.plugins.sanitize.DeduplicateIds" in config
            and "grading.plugins.sanitize.CheckCellMetadata" in config), (
        "c.Autograde.sanitize_preprocessors in nbgrader_config.py must use grading.plugins.sanitize")


# ------------------------------------------------------------------------------------ pathological (budgets) ----

@pytest.fixture(scope="module")
def pathological_class(tmp_path_factory):
    course = build_class(tmp_path_factory.mktemp("pathological") / "course", PATHOLOGICAL)
    before = _snapshot(course)
    start = time.monotonic()
    logs = []
    for module, *args in (("grading.cli.grade_class", "--workers", "1"), ("grading.cli.feedback",),
                          ("grading.cli.report", "--course", ".")):
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=course, env=ENV, text=True,
                              capture_output=True, timeout=900)
        assert proc.returncode == 0, f"{module}:\n{proc.stdout}\n{proc.stderr}"
        logs.append(proc.stdout + proc.stderr)
    print(f"\npathological class: graded, fed back and reported in {time.monotonic() - start:.0f} s")
    return Graded(course, before, "\n".join(logs), time.monotonic() - start)


def _page(course, student):
    return (course / "feedback" / student / ASSIGNMENT / "backprop.html").read_text()


@pytest.mark.parametrize("entry", PATHOLOGICAL, ids=lambda e: e.name)
def test_a_pathological_submission_costs_its_student_one_problem_line(pathological_class, entry):
    graded = pathological_class
    row = graded.rows[entry.name]
    assert row.items == _by_item(entry.expected) and row.total == sum(entry.expected.values())
    assert entry.problem in (row.problem or ""), row.problem
    assert "\n" not in row.problem
    if entry.name in graded.grades:
        assert graded.grades[entry.name] == entry.expected
    _assert_untouched(graded)
    assert f"{HONEST} " in graded.log and "Traceback" not in graded.log      # the report printed the whole class
    report_csv = (graded.course / "reports" / "grades_by_item.csv").read_text()
    assert all(student in report_csv for student in graded.students)
    assert (graded.course / "reports" / "misconceptions.csv").is_file()


def test_pathological_feedback_pages_are_bounded_and_the_others_unchanged(pathological_class):
    course = pathological_class.course
    assert _pages(course) == sorted([HONEST, "big-code-cell", "nested-markup"])
    big = _page(course, "big-code-cell")
    assert "the feedback page shows its first 64 KB" in big and len(big) < len(_page(course, HONEST)) + (2 << 20)
    nested = _page(course, "nested-markup")
    assert "&lt;div&gt;&lt;div&gt;" in nested and "<div><div><div><div><div><div>" not in nested
    honest_page = re.sub(r"\s+", " ", _page(course, HONEST))
    assert "shows its first" not in honest_page and "cleaning limits" not in honest_page


def test_numerics_flag_does_not_parse_a_cell_over_its_limit_under_plain_nbgrader(pathological_class, tmp_path):
    """The same budgets under plain `nbgrader autograde` and `generate_feedback` (formgrader's buttons)."""
    course = tmp_path / "course"
    shutil.copytree(pathological_class.course, course, symlinks=True)
    nbgrader(course, "autograde", ASSIGNMENT, "--student", "big-code-cell", "--force")
    nbgrader(course, "generate_feedback", ASSIGNMENT, "--student", "big-code-cell", "--force")
    row = _report_rows(course)["big-code-cell"]
    assert row.items == _by_item(FULL) and "(over 64 KB) and was not read" in row.problem
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        flagged = {g.name for nb in gb.find_submission(ASSIGNMENT, "big-code-cell").notebooks for g in nb.grades
                   if g.needs_manual_grade}
    assert flagged == {"test_multiply_backward", "test_sum_backward"}
    assert "the feedback page shows its first 64 KB" in _page(course, "big-code-cell")
    (course / "autograded" / PROBLEMS_FILE).unlink()                 # what only the class run records
    proc = nbgrader(course, "autograde", ASSIGNMENT, "--student", "deep-nesting", "--force", check=False)
    assert "error processing assignment" in proc.stdout + proc.stderr        # nbgrader cannot read it either
    assert _report_rows(course)["deep-nesting"].problem == (
        "not autograded: backprop.ipynb nests 100004 levels deep (over 100): not read")
