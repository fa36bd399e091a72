"""Issue 21, item 1: a student changing their own inbound entry after `nbgrader submit` (the exchange's inbound
folder and each entry in it are world-writable). The real exchange: release_assignment, fetch_assignment, submit,
then the entry tampered with, then the bundle's `nbgrader collect` (grading/plugins/safe_collect.py) and autograde.

EXCHANGE_ATTACKS is the catalog: student -> (what they do to their entry, the one line collect must print).
Each must leave nothing of theirs in submitted/; the honest control is collected with regular files only; the
forged timestamp.txt is reported and the late penalty comes from the exchange's time. Collect runs with a file
size limit, so a collect that copies /dev/zero dies instead of filling the disk (slow: one student is graded).
"""
import datetime
import glob
import os
import resource
import subprocess

import pytest
from conftest import ASSIGNMENT, BIN, NOTEBOOK, make_course, nbgrader, write_test_secret
from graded_course import gradebook_contents
from test_exchange import SOLVED, answer, new_student, student_run

from grading.course import COURSE_ID

pytestmark = pytest.mark.slow
DUE = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
FORGED = (DUE - datetime.timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def link(name, target):
    return lambda entry, course: os.symlink(target(course), entry / name)


def swap_notebook(entry, course):
    os.remove(entry / NOTEBOOK)
    os.symlink(course / "source" / ASSIGNMENT / NOTEBOOK, entry / NOTEBOOK)


EXCHANGE_ATTACKS = {
    "mallory": ("backprop.ipynb -> the source notebook", swap_notebook, "backprop.ipynb is a symbolic link"),
    "leaky": ("leak.txt -> seed_secret", link("leak.txt", lambda c: c / "seed_secret"), "leak.txt is a symbolic link"),
    "gbthief": ("gb.txt -> gradebook.db", link("gb.txt", lambda c: c / "gradebook.db"), "gb.txt is a symbolic link"),
    "filler": ("notes.txt -> /dev/zero", link("notes.txt", lambda c: "/dev/zero"), "notes.txt is a symbolic link"),
    "piper": ("a FIFO", lambda e, c: os.mkfifo(e / "notes.fifo"), "notes.fifo is a named pipe (FIFO)"),
    "hoarder": ("a 200 MiB (sparse) file", lambda e, c: os.truncate(e / "big.bin", 200 << 20) if
                (e / "big.bin").touch() is None else None, "add up to more than 100 MiB"),
    "<img src=x onerror=alert(1)>": ("markup as the student id", None, "student id '<img src=x onerror=alert(1)>'"),
    "evil\x1b]0;pwned\x07\x1b[2J": ("escape sequences in the student id", None, r"student id 'evil\x1b]0;pwned"),
}
HONEST, LATE = "alice", "lara"


def collect(course, student):
    """The bundle's `nbgrader collect` of one student (so that each attack stands alone), unable to write a file
    over 50 MiB (SIGXFSZ instead of a full disk); its output, which must say that it succeeded."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (50 << 20, 50 << 20))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(BIN / "nbgrader"), "collect", ASSIGNMENT, f"--student={glob.escape(student)}"],
                          cwd=course, env=env, text=True, capture_output=True, timeout=300, preexec_fn=limit)
    return proc.stdout + proc.stderr + f"\n(exit status {proc.returncode})"


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("perimeter")
    exchange, course = tmp / "exchange", make_course(tmp / "course")
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.Exchange.root = {str(exchange)!r}\n"
                     f"c.DueDate.due_date = {DUE.strftime('%Y-%m-%d %H:%M:%S UTC')!r}\n")
    write_test_secret(course)
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    nbgrader(course, "release_assignment", ASSIGNMENT)
    home = new_student(tmp / "home", exchange)   # one UID, one home: each submits under their own --student
    student_run(home, "fetch_assignment", ASSIGNMENT)
    answer(home / "work" / ASSIGNMENT / NOTEBOOK, SOLVED, course)
    inbound = exchange / COURSE_ID / "inbound"
    for student in [HONEST, LATE, *EXCHANGE_ATTACKS]:
        student_run(home, "submit", ASSIGNMENT, f"--student={student}")
        (entry,) = [p for p in inbound.iterdir() if p.name.startswith(f"{student}+{ASSIGNMENT}+")]
        tamper = EXCHANGE_ATTACKS.get(student, (None, None))[1]
        if tamper:
            tamper(entry, course)
        if student == LATE:
            (entry / "timestamp.txt").write_text(FORGED)
    return course, {student: collect(course, student) for student in [HONEST, LATE, *EXCHANGE_ATTACKS]}


@pytest.mark.parametrize("student", list(EXCHANGE_ATTACKS))
def test_tampered_entry_is_not_collected(collected, student):
    course, logs = collected
    log = logs[student]
    assert log.endswith("(exit status 0)") and not (course / "submitted" / student / ASSIGNMENT).exists(), log
    line = next((line for line in log.splitlines() if EXCHANGE_ATTACKS[student][2] in line), None)
    assert line and "not collected" in line, log


def test_collect_prints_no_escape_sequences(collected):
    log = "".join(collected[1].values())
    assert "\x1b" not in log and "\x07" not in log


def test_honest_submission_is_collected_as_regular_files(collected):
    course, logs = collected
    log = logs[HONEST]
    assert log.endswith("(exit status 0)"), log
    folder = course / "submitted" / HONEST / ASSIGNMENT
    assert {NOTEBOOK, "submission_secret.txt", "timestamp.txt", "gradcheck.py"} <= {p.name for p in folder.iterdir()}
    assert all(p.is_file() and not p.is_symlink() for p in folder.iterdir())
    assert f"{HONEST}: timestamp.txt" not in log


def test_forged_timestamp_is_reported_and_the_late_penalty_stands(collected):
    course, logs = collected
    log = logs[LATE]
    assert f"{LATE}: timestamp.txt says {FORGED[:19]}" in log
    nbgrader(course, "autograde", ASSIGNMENT, f"--student={LATE}")
    penalty = gradebook_contents(course)[LATE]["backprop"]["penalty"]
    assert penalty == pytest.approx(1.0)   # 10 points, one started day late: 10 %


def test_formgraders_collect_button_goes_through_the_same_collect(collected):
    """Formgrader's Collect button calls NbGraderAPI.collect, which takes nbgrader_config.py's ExchangeFactory."""
    from grading.course_config import nbgrader_api
    course, _ = collected
    result = nbgrader_api(course).collect(ASSIGNMENT)
    assert result["success"], result
    for student, (_, _, line) in EXCHANGE_ATTACKS.items():
        assert line in result["log"] and not (course / "submitted" / student / ASSIGNMENT).exists(), student
