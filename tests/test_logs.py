"""Quiet, honest logs (grading/plugins/quiet_logs.py) on plain `nbgrader autograde` and `generate_feedback`:
stock noise gone or said once, late penalties INFO, and real problems still loud (slow: a small class is graded).
"""
import pytest
from conftest import ASSIGNMENT, NOTEBOOK, make_course, nbgrader
from graded_course import submit

from grading.courses import sample_class

pytestmark = pytest.mark.slow
CHECKSUM = "Attribute 'checksum' for cell"


def stamp(course, student, when):
    (course / "submitted" / student / ASSIGNMENT / "timestamp.txt").write_text(when + "\n")


def lines(proc, level):
    return [line for line in (proc.stdout + proc.stderr).splitlines() if f"| {level}]" in line]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A class of three: lena (all solved, a day late), tom (edited a test cell), xavier (not JSON); the
    logs of autograde and generate_feedback, at nbgrader's default level (INFO)."""
    course = make_course(tmp_path_factory.mktemp("logs") / "course")
    with open(course / "nbgrader_config.py", "a") as config:
        config.write('\nc.DueDate.due_date = "2026-11-20 12:00:00 UTC"\n')
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    solutions = sample_class.solution_sources(course / "source" / ASSIGNMENT / NOTEBOOK)
    submit(course, "lena", solutions)
    stamp(course, "lena", "2026-11-21 08:00:00.000000 UTC")
    tampered = "import gradcheck\nprint('all good')"
    submit(course, "tom", {**solutions, "test_multiply_backward": tampered})
    submit(course, "xavier", notebook_bytes=b'{"cells": [ this is not JSON')
    for student in ("tom", "xavier"):
        stamp(course, student, "2026-11-20 10:00:00.000000 UTC")
    autograde = nbgrader(course, "autograde", ASSIGNMENT, check=False)
    feedback = nbgrader(course, "generate_feedback", ASSIGNMENT, check=False)
    quiet = nbgrader(course, "autograde", ASSIGNMENT, "--force", "--student=lena", "--log-level=WARN", check=False)
    return autograde, feedback, quiet


def test_stock_noise_is_gone_or_said_once(graded):
    autograde = graded[0]
    for proc in graded:
        assert "SAWarning" not in proc.stderr and "display_data_priority" not in proc.stderr
    # five test cells per student differ from the gradebook by their hidden tests: said once, as INFO
    notes = [line for line in lines(autograde, "INFO") if "nbgrader issue 1961" in line]
    assert len(notes) == 1
    assert not [line for line in lines(autograde, "INFO") if CHECKSUM in line]


def test_late_penalties_are_info(graded):
    autograde, feedback, quiet = graded
    assert any("lena is 1 day(s) late: penalty 1.00 of 10.00" in line for line in lines(autograde, "INFO"))
    assert any("Late submission penalty: 1.0" in line for line in lines(feedback, "INFO"))
    for proc in graded:
        assert not [line for line in lines(proc, "WARNING") if "late" in line.lower()]
    assert not lines(quiet, "INFO")  # made INFO, a record is shown only where INFO is


def test_real_problems_stay_loud(graded):
    autograde, _, _ = graded
    warnings = lines(autograde, "WARNING")
    # the edited test cell is reported, and only that one
    assert [line for line in warnings if CHECKSUM in line] == [
        next(line for line in warnings if f"{CHECKSUM} test_multiply_backward has changed" in line)]
    problems = lines(autograde, "ERROR") + warnings
    assert any("xavier" in line for line in problems), autograde.stderr
