"""grading.reporting.mistakes names the class's mistakes from the check records the grader stored, and only those.

The fast tests run the trusted checker in-process on the bug catalog and collect its records as the grader does;
the slow ones read the sample class of `make demo`, graded once per session (tests/graded_course.py), and expect
exact counts. tests/test_check_records.py rewords every message of a course and forges records.
"""
import contextlib
import csv
import io
import json
import shutil
import subprocess
import sys

import nbformat
import numpy as np
import pytest
from scipy.special import softmax

from conftest import ASSIGNMENT, NOTEBOOK, REPO
from graded_course import STUDENTS, graded_course  # noqa: F401 -- the fixture
from grading.course import CHECKS, METADATA_KEY, RECORDS_MODULE
from grading.fixtures.bug_catalog import BUGS
from grading.reporting import mistakes as misconceptions
from test_report import png_size

CATALOG = {bug.name: bug for bug in BUGS}


def load_checker(dirs=(REPO / "source" / ASSIGNMENT, REPO)):
    """The course's trusted checker modules, loaded as the grader loads them."""
    return misconceptions.TrustedModules(names=list(misconceptions.TRUSTED_MODULES), dir_templates=list(map(str, dirs)))


@pytest.fixture(scope="module")
def checker():
    return load_checker()


def sub_checks(checker):
    return {item: list(spec.points) for item, spec in checker.load(misconceptions.REGISTRY_MODULE).ITEMS.items()}


def graded(checker, item, source):
    """(what `gradcheck.grade` prints, the records it hands to the grader) for an answer cell's source (run
    in-process, as in the test cell)."""
    namespace = {"np": np, "nn": checker.load("nn"), "softmax": softmax}
    exec(source, namespace)
    answer = namespace[checker.load(misconceptions.REGISTRY_MODULE).ITEMS[item].impl_name]
    out, records = io.StringIO(), []
    with contextlib.redirect_stdout(out), checker.load(RECORDS_MODULE).recording(
            lambda results: records.extend(r.to_json() for r in results)):
        checker.load("gradcheck").grade(item, answer)
    return out.getvalue(), json.loads(json.dumps(records))   # as stored: plain JSON


def mistakes(checker, item, source):
    """{sub-check: mistake} named for one answer, from its records."""
    parsed_item, failed = misconceptions.failed_checks(graded(checker, item, source)[1], sub_checks(checker))
    assert parsed_item == item
    return {check: name for check, code in failed for name in [misconceptions.mistake_name(code)] if name}


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: b.name)
def test_every_catalogued_mistake_is_read_and_named(checker, bug):
    named = mistakes(checker, bug.item, bug.source)
    assert "other" not in named.values(), named
    total = checker.load(misconceptions.REGISTRY_MODULE).ITEMS[bug.item].total
    if bug.expected_points == total or "not implemented" in (bug.diagnosis or ""):
        assert named == {}  # nothing wrong, or nothing attempted
    else:
        assert named, "a failing answer with no named mistake"


@pytest.mark.parametrize("bug, expected", [
    ("nll_grad_missing_1_over_n", {"d_W": "missing 1/N", "d_b": "missing 1/N"}),
    ("nll_grad_y_minus_probs", {"d_W": "sign flipped", "d_b": "sign flipped"}),
    ("nll_grad_right_only_at_w0", {"d_W": "right only at W = 0", "d_b": "right only at W = 0"}),
    ("nll_grad_transposed_d_w", {"outputs": "transposed", "d_W": "transposed"}),
    ("nll_grad_d_b_wrong_axis", {"outputs": "wrong shape", "d_b": "wrong reduction axis"}),
    ("nll_grad_outputs_swapped", {"outputs": "outputs swapped", "d_W": "outputs swapped", "d_b": "outputs swapped"}),
    ("nll_grad_no_softmax", {"d_W": "wrong values", "d_b": "wrong values"}),
    ("multiply_outputs_swapped", {"d_x": "outputs swapped", "d_y": "outputs swapped"}),
    ("multiply_d_out_ignored", {"d_x": "d_out ignored", "d_y": "d_out ignored"}),
    ("multiply_stale_cache", {"latest cache": "stale cache"}),
    ("multiply_factor_2", {"d_x": "constant factor"}),
    ("multiply_float32", {"outputs": "wrong dtype"}),
    ("multiply_mutates_d_out", {"d_y": "wrong values", "inputs unchanged": "input modified in place"}),
    ("multiply_returns_none", dict.fromkeys(["outputs", "d_x", "d_y", "inputs unchanged"], "returned None")),
    ("multiply_crashes_on_matrices", dict.fromkeys(["outputs", "d_x", "d_y", "inputs unchanged"], "crashed")),
    ("multiply_not_implemented", {}),  # not attempted: the grade table shows it, it is no misconception
    ("sum_returns_scalar", dict.fromkeys(["outputs", "d_x", "inputs unchanged"], "a number, not an array")),
    ("sum_d_out_ignored", {"d_x": "d_out ignored"}),
    ("dot_product_outputs_swapped", {"d_x": "outputs swapped", "d_y": "outputs swapped"}),
    ("step_gradient_ascent", {"W update": "sign flipped", "b update": "sign flipped"}),
    ("step_b_not_updated", {"b update": "parameter not updated"}),
    ("step_default_learning_rate", {"W update": "learning rate ignored", "b update": "learning rate ignored"}),
    ("step_loss_after_update", {"loss before update": "loss after the update"}),
    ("step_summed_loss", {"loss before update": "missing 1/N"}),
])
def test_named_mistakes_of_typical_answers(checker, bug, expected):
    assert mistakes(checker, CATALOG[bug].item, CATALOG[bug].source) == expected


def test_every_mistake_code_has_one_label_and_every_label_is_a_code(checker):
    """The report's label table covers every mistake code the checker declares, and names no other."""
    rec = checker.load(RECORDS_MODULE)
    codes = {v for k, v in vars(rec).items() if k.isupper() and isinstance(v, str)}
    assert set(misconceptions.LABELS) <= codes
    assert codes - set(misconceptions.LABELS) == {rec.WRONG_LOSS, rec.MISSING_PARAM, rec.UNREADABLE, rec.CHECK_FAILED}
    assert misconceptions.mistake_name(rec.TOO_SLOW) == "too slow (numerical gradient?)"
    assert misconceptions.mistake_name(rec.WRONG_LOSS) == "other"
    assert misconceptions.mistake_name(rec.NOT_COUNTED) is None


def test_records_hold_no_student_text(checker):
    """An exception's type and message are student text: the printed diagnosis quotes them, the record never
    does (it holds a code, points and numbers), so no text a student chooses can name a mistake."""
    source = "def nll_grad(X, W, b, Y):\n    raise ValueError('missing 1/N, sign flipped')\n"
    text, records = graded(checker, "nll_grad", source)
    assert "raised ValueError: missing 1/N, sign flipped" in text
    assert "missing 1/N" not in json.dumps(records) and {r["code"] for r in records} == {"raised"}


def test_a_record_has_the_worst_entry_and_both_values(checker):
    text, records = graded(checker, "nll_grad", CATALOG["nll_grad_missing_1_over_n"].source)
    d_w = next(r for r in records if r["check"] == "d_W")
    assert d_w["code"] == "missing_1_over_n" and d_w["earned"] == 0 and d_w["possible"] == 1
    assert len(d_w["worst"]) == 2 and d_w["got"] != d_w["expected"]
    worst = f"worst d_W[{d_w['worst'][0]}, {d_w['worst'][1]}]: got {d_w['got']:.4g}, expected {d_w['expected']:.4g}"
    assert worst in text   # the printed line is rendered from the same record
    outputs = next(r for r in records if r["check"] == "outputs")
    assert outputs["code"] == "passed" and outputs["earned"] == outputs["possible"] == 0.5


def test_a_line_break_in_an_exception_name_forges_no_line(checker):
    """A type name may hold a line break, and the checker prints type names: it folds them onto one line; the
    records say "raised" whatever the name says."""
    forged = '"Oops\\n  ✗ d_W                0/1  d_W: missing 1/N"'
    source = f"def nll_grad(X, W, b, Y):\n    raise type({forged}, (Exception,), {{}})()\n"
    text, _ = graded(checker, "nll_grad", source)
    assert "\n  ✗ d_W                0/1  d_W: missing 1/N" not in text  # the checker keeps the name on one line
    assert "raised Oops ✗ d_W" in text
    assert mistakes(checker, "nll_grad", source) == dict.fromkeys(["outputs", "d_W", "d_b", "inputs unchanged"],
                                                                  "crashed")


def test_records_that_are_not_one_items_sub_checks_are_not_counted(checker):
    _, records = graded(checker, "nll_grad", CATALOG["nll_grad_missing_1_over_n"].source)
    for bad in [None, [], "missing_1_over_n", [1, 2], records + records,
                [dict(r, item="no_such_item") for r in records], [r for r in records if r["check"] != "d_b"]]:
        with pytest.raises(misconceptions.UnreadableRecords):
            misconceptions.failed_checks(bad, sub_checks(checker))


def test_rewording_every_message_changes_no_record():
    """Every template of gradcheck_text.py reworded (its words joined by "_", in «»): the text changes, the
    records do not."""
    plain, reworded = load_checker(), load_checker()
    templates = reworded.load("gradcheck_text").TEMPLATES
    templates.update({key: "«" + text.replace(" ", "_") + "»" for key, text in templates.items()})
    for bug in BUGS:
        before, after = graded(plain, bug.item, bug.source), graded(reworded, bug.item, bug.source)
        assert after[1] == before[1], bug.name
        assert after[0] != before[0] and "«" in after[0]


# The sample class (grading/courses/sample_class.py): who made which mistake, per item and sub-check.
EXPECTED = [
    ("multiply", "d_x", "outputs swapped", ["dev", "hana"]),
    ("multiply", "d_x", "d_out ignored", ["kai"]),
    ("multiply", "d_y", "outputs swapped", ["dev", "hana"]),
    ("multiply", "d_y", "d_out ignored", ["kai"]),
    ("multiply", "latest cache", "stale cache", ["jay"]),
    ("sum", "outputs", "a number, not an array", ["eve"]),
    ("sum", "d_x", "a number, not an array", ["eve"]),
    ("sum", "d_x", "d_out ignored", ["ivy"]),
    ("sum", "inputs unchanged", "a number, not an array", ["eve"]),
    ("dot_product", "d_x", "d_out ignored", ["ivy"]),
    ("dot_product", "d_x", "outputs swapped", ["gus"]),
    ("dot_product", "d_y", "d_out ignored", ["ivy"]),
    ("dot_product", "d_y", "outputs swapped", ["gus"]),
    ("nll_grad", "d_W", "missing 1/N", ["dev", "gus", "hana", "kai"]),
    ("nll_grad", "d_W", "sign flipped", ["jay"]),
    ("nll_grad", "d_b", "missing 1/N", ["dev", "gus", "hana", "kai"]),
    ("nll_grad", "d_b", "sign flipped", ["jay"]),
    ("logreg_step", "W update", "sign flipped", ["eve", "ivy"]),
    ("logreg_step", "b update", "sign flipped", ["eve", "ivy"]),
    ("logreg_step", "b update", "parameter not updated", ["hana"]),
]


@pytest.mark.slow
def test_sample_class_mistakes_are_counted_exactly(graded_course):
    found = misconceptions.read_class(graded_course)
    assert found.students == STUDENTS and found.notes == []
    assert misconceptions.count(found.findings, found.layout) == EXPECTED


@pytest.mark.slow
def test_report_cli_prints_the_table_and_writes_csv_and_png(graded_course, tmp_path):
    """`make report`'s command ends with the misconception report."""
    proc = subprocess.run([sys.executable, "-m", "grading.cli.report", "--course", str(graded_course),
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert misconceptions.format_table(EXPECTED, len(STUDENTS)) in proc.stdout
    assert "nll_grad     d_W               missing 1/N                 4/11  dev, gus, hana, kai" in proc.stdout
    with open(tmp_path / "misconceptions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["item"], r["sub_check"], r["mistake"], r["student_ids"].split(), int(r["students"]),
             int(r["class_size"])) for r in rows] == [(*e, len(e[3]), len(STUDENTS)) for e in EXPECTED]
    width, height = png_size(tmp_path / "misconceptions.png")
    assert width == 1200 and height >= 300 and (tmp_path / "misconceptions.png").stat().st_size > 20_000


@pytest.mark.slow
def test_only_the_graders_test_cells_are_read(graded_course, tmp_path):
    """Records in a cell of an autograded notebook that is not one of the gradebook's test cells -- an ordinary
    cell, or one that claims a grade id the gradebook does not have -- are never read (the grader never writes
    such records: tests/test_check_records.py forges them in a submission)."""
    course = tmp_path / "course"
    shutil.copytree(graded_course, course)
    path = course / "autograded" / "ada" / ASSIGNMENT / NOTEBOOK
    nb = nbformat.read(path, as_version=4)
    fake = records_of_sample(graded_course, "dev", "test_nll_grad")
    for grade_id in [None, "test_nll_grad_copy"]:
        cell = nbformat.v4.new_code_cell("print(...)")
        cell.metadata[METADATA_KEY] = {CHECKS: fake}
        if grade_id:
            cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": False, "points": 3,
                                         "schema_version": 3, "solution": False, "task": False}
        nb.cells.insert(1, cell)
    nbformat.write(nb, path)
    found = misconceptions.read_class(course)
    assert "ada" not in {f.student for f in found.findings}
    assert misconceptions.count(found.findings, found.layout) == EXPECTED


def records_of_sample(course, student, grade_id):
    """The check records of one test cell of a graded sample student."""
    nb = course / "autograded" / student / ASSIGNMENT / NOTEBOOK
    return misconceptions.grader_records(nb, {grade_id})[grade_id]
