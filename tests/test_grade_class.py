"""Class grading (grading/class_grading/, `python -m grading.cli.grade_class`) on local worker processes and on
Dask: Dask workers elsewhere than the course, failing and overrunning submissions, instructor-only files; one
student's trouble is that student's one-line problem and the class run goes on."""
import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest
from nbgrader.api import Gradebook

from conftest import ASSIGNMENT, BIN, NOTEBOOK, nbgrader
from graded_course import EXPECTED, grade_table, make_class, run, submit
from grading.class_grading import autograde_one, gradebook_rows, problems
from grading.reporting import grades as report
from grading.course import COURSE_ID, PROBLEMS_FILE
from grading.course_config import gradebook_url
from grading.courses import sample_class
from grading.notebook_items import graded_items

BROKEN = b'{"cells": [ this is not JSON'


def problems_file(course):
    return json.loads((course / "autograded" / PROBLEMS_FILE).read_text())


def report_problems(course):
    return {row.student: row.problem for row in report.load_report(course).rows}


# ---------------------------------------------------------------- payloads (fast) ----------------------------

def test_course_payload_ships_the_release_and_not_the_grading_package(course):
    files = autograde_one.course_payload(course, ASSIGNMENT)
    for name in [NOTEBOOK, "gradcheck.py", "nn.py"]:
        assert files[f"release/{ASSIGNMENT}/{name}"] == (course / "release" / ASSIGNMENT / name).read_bytes()
        assert files[f"source/{ASSIGNMENT}/{name}"] == (course / "source" / ASSIGNMENT / name).read_bytes()
    assert {"nbgrader_config.py", "gradebook.db", "nn.py"} <= set(files)
    assert not [rel for rel in files if rel.startswith("grading/")], "workers get the package once, not per task"


def test_submission_payload_ships_regular_files_only(tmp_path):
    """Through the intake (grading/plugins/intake.py): a submission of regular files is shipped whole, one
    holding a link or a pipe is refused whole (nothing shipped; the coordinator's Autograde gives the reason)."""
    folder = tmp_path / "submitted" / "sam" / ASSIGNMENT
    (folder / "data").mkdir(parents=True)
    (folder / NOTEBOOK).write_text("{}")
    (folder / "data" / "x.txt").write_text("x")
    assert autograde_one.submission_payload(tmp_path, ASSIGNMENT, "sam") == {NOTEBOOK: b"{}", "data/x.txt": b"x"}
    (tmp_path / "secret.txt").write_text("instructor only")
    for name, make in [("linked.txt", lambda p: p.symlink_to(tmp_path / "secret.txt")),
                       ("linked_dir", lambda p: p.symlink_to(tmp_path, target_is_directory=True)),
                       ("pipe", os.mkfifo)]:
        make(folder / name)
        assert autograde_one.submission_payload(tmp_path, ASSIGNMENT, "sam") == {}, name
        (folder / name).unlink()


def test_a_workers_snapshot_holds_the_structure_and_its_students_rows_only(course, tmp_path):
    """grading/class_grading/gradebook_rows.py: the snapshot has the assignment (due date, cells) and no student;
    a student's rows added to it read back as the course gradebook's values (extension, manual score); the
    coordinator writes back only what the worker changed, keeping a manual comment given meanwhile."""
    url = gradebook_url(course)
    with Gradebook(url, COURSE_ID) as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=datetime(2026, 11, 20, 23, 59))
        gb.update_or_create_student("sam")
        gb.add_submission(ASSIGNMENT, "sam", timestamp="2026-11-21 10:00:00 UTC")
        gb.grant_extension(ASSIGNMENT, "sam", hours=12)
        gb.find_grade("test_multiply_backward", "backprop", ASSIGNMENT, "sam").manual_score = 1.5
        gb.update_or_create_student("other")
        gb.db.commit()
        before = gradebook_rows.recorded_values(gb, ASSIGNMENT, "sam")
        with gb.engine.connect() as connection:
            rows = gradebook_rows.student_rows(connection, ASSIGNMENT, "sam")
    snapshot = tmp_path / "snapshot.db"
    gradebook_rows.structure_snapshot(url, ASSIGNMENT, snapshot)
    with sqlite3.connect(snapshot) as db:
        assert db.execute("select name, duedate from assignment").fetchall() == [
            (ASSIGNMENT, "2026-11-20 23:59:00.000000")]
        assert db.execute("select count(*) from grade_cells").fetchone()[0] == len(graded_items())
        for table in gradebook_rows.STUDENT:
            assert db.execute(f"select count(*) from {table}").fetchone()[0] == 0, table
    gradebook_rows.add_rows(f"sqlite:///{snapshot}", rows)
    with Gradebook(f"sqlite:///{snapshot}", COURSE_ID) as worker:
        assert gradebook_rows.recorded_values(worker, ASSIGNMENT, "sam") == before
        assert [s.id for s in worker.students] == ["sam"]
        grade = worker.find_grade("test_multiply_backward", "backprop", ASSIGNMENT, "sam")
        grade.auto_score, grade.needs_manual_grade = 2.0, True
        worker.find_submission_notebook("backprop", ASSIGNMENT, "sam").late_submission_penalty = 0.5
        worker.db.commit()
        after = gradebook_rows.recorded_values(worker, ASSIGNMENT, "sam")
    with Gradebook(url, COURSE_ID) as gb:
        gb.find_comment("multiply_backward", "backprop", ASSIGNMENT, "sam").manual_comment = "see me"
        gb.db.commit()
        gradebook_rows.write_values(gb, ASSIGNMENT, "sam", before, after)
        gb.db.commit()
        grade = gb.find_grade("test_multiply_backward", "backprop", ASSIGNMENT, "sam")
        assert (grade.auto_score, grade.manual_score, grade.needs_manual_grade) == (2.0, 1.5, True)
        assert gb.find_submission_notebook("backprop", ASSIGNMENT, "sam").late_submission_penalty == 0.5
        assert gb.find_comment("multiply_backward", "backprop", ASSIGNMENT, "sam").manual_comment == "see me"
        assert gb.find_submission(ASSIGNMENT, "sam").extension == timedelta(hours=12)


def test_an_exception_is_one_line_with_its_type():
    assert problems.one_line(ModuleNotFoundError("No module named 'grading.cli'\nmore")) == \
        "ModuleNotFoundError: No module named 'grading.cli'"
    assert problems.one_line(TimeoutError()) == "TimeoutError"


# ---------------------------------------------------------------- whole runs (slow) --------------------------

CLUSTER = """
import importlib.util, json, os, sys
from dask.distributed import Client, LocalCluster
cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, scheduler_port=0,
                       dashboard_address=None, silence_logs=40)
def forget_installed_grading():
    # A remote worker has the course's environment, but not this checkout's editable install of grading.
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
with Client(cluster) as client:
    client.run(forget_installed_grading)
    seen = client.run(lambda: (os.getcwd(), importlib.util.find_spec("grading") is not None))
print(json.dumps(list(seen.values())), flush=True)
print(cluster.scheduler_address, flush=True)
sys.stdin.read()  # until the test is done
cluster.close()
"""


@pytest.fixture
def remote_scheduler(tmp_path):
    """A Dask cluster that shares nothing with the course but the machine: its processes run in an empty
    directory, without the repository on sys.path. Yields (scheduler address, [(worker cwd, imports grading)])."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.Popen([sys.executable, "-c", CLUSTER], cwd=elsewhere, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        workers = json.loads(proc.stdout.readline())
        yield proc.stdout.readline().strip(), workers
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_workers_elsewhere_grade_a_class_with_a_broken_submission(tmp_path, remote_scheduler):
    address, workers = remote_scheduler
    course = make_class(tmp_path / "course")
    assert workers and all(cwd != str(course) and not imports_grading for cwd, imports_grading in workers)
    submit(course, "zed", notebook_bytes=BROKEN)
    # One worker, ada first: zed's failure comes after a finished task's scratch course is gone.
    log = run(course, "grading.cli.grade_class", "--scheduler", address, "--student", "ada", "--student", "zed",
              "--student", "dev")
    assert "graded 2/3 submissions" in log, log
    assert [line for line in log.splitlines() if "] zed " in line and "FAILED: " in line], log
    table = grade_table(course)
    assert {s: table[s] for s in ["ada", "dev"]} == {s: EXPECTED[s] for s in ["ada", "dev"]}
    assert "not valid JSON" in report_problems(course)["zed"]
    assert set(problems_file(course)) == {"zed"}


SNOOP = """import os
for path in ["answer_key.txt", os.path.join(os.getcwd(), "answer_key.txt")]:
    try:
        print(open(path).read())
    except OSError as error:
        print("no instructor file:", type(error).__name__)
print("files here:", "|".join(sorted(os.listdir("."))) + "|")
"""
KEY = "INSTRUCTOR ONLY: the answer key 5d1f0c"


@pytest.mark.slow
def test_an_instructor_only_file_is_not_readable_under_two_workers(tmp_path):
    course = make_class(tmp_path / "course")
    (course / "source" / ASSIGNMENT / "answer_key.txt").write_text(KEY + "\n")  # added after the release
    submit(course, "mallory", {"multiply_backward": SNOOP})
    run(course, "grading.cli.grade_class", "--workers", "2", "--student", "mallory", "--student", "ada")
    nbgrader(course, "generate_feedback", ASSIGNMENT, "--student", "mallory", "--force")
    graded = (course / "autograded" / "mallory" / ASSIGNMENT / NOTEBOOK).read_text()
    feedback = (course / "feedback" / "mallory" / ASSIGNMENT / NOTEBOOK.replace(".ipynb", ".html")).read_text()
    assert "no instructor file: FileNotFoundError" in graded, "the snooping cell did not run"
    assert "files here: " in graded
    for page in (graded, feedback):  # "answer_key.txt|" would only be in the printed listing
        assert KEY not in page and "answer_key.txt|" not in page
    assert grade_table(course)["ada"] == EXPECTED["ada"]


@pytest.mark.slow
def test_a_task_over_the_task_timeout_is_that_students_problem(tmp_path):
    course = make_class(tmp_path / "course")
    # Every answer cell sleeps just under the 60 s cell timeout: 275 s for five, no cell ever times out.
    submit(course, "sloth", {cell: "import time\ntime.sleep(55)" for cell in sample_class.ANSWERS})
    start = time.monotonic()
    log = run(course, "grading.cli.grade_class", "--workers", "2", "--task-timeout", "90",
              "--student", "sloth", "--student", "ada", "--student", "dev")
    assert time.monotonic() - start < 240, "the run waited for the overrunning submission"
    assert "graded 2/3 submissions" in log, log
    assert [line for line in log.splitlines() if "] sloth " in line and "task timeout of 90 s" in line], log
    assert "could not restart worker" not in log, log  # the hung kernel went with its worker
    table = grade_table(course)
    assert {s: table[s] for s in ["ada", "dev"]} == {s: EXPECTED[s] for s in ["ada", "dev"]}
    assert "task timeout of 90 s" in problems_file(course)["sloth"]
    assert "task timeout of 90 s" in report_problems(course)["sloth"]
