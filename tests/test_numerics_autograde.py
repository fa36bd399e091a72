"""Backprop, not numerics, through the real pipeline (slow): nbgrader autograde, sandbox, RPC, SQLite gradebook.

* The answers of grading/fixtures/numerics_catalog.py, pasted into the release and graded by grading.cli.grade_class
  (2 workers): a numerical DotProduct and nll_grad lose the item on the large case ("too slow", the call timeout
  ends them cleanly); numerical Multiply and Sum keep their points and are flagged needs_manual_grade, with the
  reason in the answer's comment and the grade report; nothing else of those students changes.
* Hidden inputs: the same submission graded twice draws the same inputs and gets the same outputs; one changed
  byte in an answer cell draws other inputs; parallel grading draws what sequential grading draws; the course
  secret is in no released, autograded or feedback file and student code cannot read it.
"""
import json

import nbformat
import pytest
from conftest import ASSIGNMENT, NOTEBOOK, nbgrader
from graded_course import make_class, run, submit
from nbformat.v4 import new_code_cell
from nbgrader.api import Gradebook
from test_bug_catalog_autograde import ITEMS as CELLS  # item -> (answer cell, report column, points)

from grading.reporting import grades as report
from grading.courses import sample_class
from grading.course import COURSE_ID, METADATA_KEY, PROBLEMS
from grading.fixtures import reference_solutions as ref
from grading.fixtures.numerics_catalog import ANSWERS

pytestmark = pytest.mark.slow

CATALOG = {answer.name: answer for answer in ANSWERS}
# student -> {answer cell: catalog entry}; every other answer is the instructor's solution
PLANS = {
    "numerical": {"dot_product_backward": "dot_product_central_differences",
                  "nll_grad": "nll_grad_central_differences"},
    "flagged": {"multiply_backward": "multiply_complex_step", "sum_backward": "sum_forward_differences"},
    "inline": {"multiply_backward": "multiply_inline_differences"},
}


def gradebook(course):
    return Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID)


def test_catalog_is_covered():
    items = {CATALOG[name].item for plan in PLANS.values() for name in plan.values()}
    assert {"DotProduct.backward", "nll_grad", "Multiply.backward", "Sum.backward"} <= items
    assert sorted(name for plan in PLANS.values() for name in plan.values()) == sorted(CATALOG)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_class(tmp_path_factory.mktemp("numerics") / "course")
    solutions = sample_class.solution_sources(course / "source" / ASSIGNMENT / NOTEBOOK)
    for student, plan in PLANS.items():
        full = {cell: plan.get(cell, "solution") for cell, _, _ in CELLS.values()}
        sample_class.make_submission(course, student, -1, full, solutions, CATALOG)
    sample_class.register(course, COURSE_ID, {s: s for s in PLANS})
    run(course, "grading.cli.grade_class", "--workers", "2", *[a for s in PLANS for a in ("--student", s)],
        timeout=1500)
    return course


def test_each_answer_gets_exactly_its_points_and_nothing_else_is_lost(graded):
    rows = {r.student: r for r in report.load_report(graded).rows}
    for student, plan in PLANS.items():
        answers = {cell: CATALOG[name] for cell, name in plan.items()}
        expected = {column: answers[cell].expected_points if cell in answers else points
                    for cell, column, points in CELLS.values()}
        assert rows[student].items == expected, student


def test_elementwise_numerics_are_flagged_for_manual_grading_with_a_reason(graded):
    rows = {r.student: r for r in report.load_report(graded).rows}
    with gradebook(graded) as gb:
        for student, plan in PLANS.items():
            flagged = {cell for cell, name in plan.items() if CATALOG[name].flagged}
            if flagged:       # the grade report shows the notes, the first one in full
                assert rows[student].problem.startswith(problem_notes(graded, student)[0])
            sub = gb.find_submission(ASSIGNMENT, student)
            assert sub.needs_manual_grade == bool(flagged), student   # formgrader's "needs manual grade"
            grades = {g.name: g for nb in sub.notebooks for g in nb.grades}
            comments = {c.name: c.comment for nb in sub.notebooks for c in nb.comments}
            for cell, _, points in CELLS.values():
                grade = grades[f"test_{cell}"]
                assert grade.needs_manual_grade == (cell in flagged), (student, cell)
                if cell in flagged:
                    note = comments[cell]
                    assert grade.auto_score == points and grade.manual_score is None     # never a silent zero
                    assert note.startswith("needs manual review: its backward ") and "\n" not in note
                    assert CATALOG[plan[cell]].diagnosis in note
                    assert f"{cell}: {note}" in problem_notes(graded, student)
                else:
                    assert comments[cell] is None or not comments[cell].startswith("needs manual review")


def problem_notes(course, student):
    nb = nbformat.read(course / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)
    return nb.metadata[METADATA_KEY][PROBLEMS]


def test_numerical_vector_and_matrix_answers_fail_the_large_case_cleanly(graded):
    nb = nbformat.read(graded / "autograded" / "numerical" / ASSIGNMENT / NOTEBOOK, as_version=4)
    outputs = {cell.metadata["nbgrader"]["grade_id"]: cell.outputs for cell in nb.cells
               if cell.metadata.get("nbgrader", {}).get("grade") and cell.cell_type == "code"}
    for cell, name in PLANS["numerical"].items():
        out = outputs[f"test_{cell}"]
        text = "".join(o.get("text", "") for o in out if o["output_type"] == "stream")
        assert [o["output_type"] for o in out] == ["stream", "execute_result"]     # no error, no traceback
        assert out[-1]["data"]["text/plain"] == "0.0"
        assert CATALOG[name].diagnosis in text and "did not finish within 30 s" in text, text
        assert "Traceback" not in text


# ---------------------------------------------------------------- hidden inputs per submission -----------

# The reference Multiply, recording a hash of every x it receives in RECEIVED.
PROBE = "import hashlib\n\nRECEIVED = []\n" + ref.SOURCES["Multiply.backward"].replace(
    "        self.cache = (x, y)\n",
    "        RECEIVED.append(hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest())\n"
    "        self.cache = (x, y)\n")


def probe_notebook(course, secret_path, marker=""):
    """The release with every answer solved, Multiply recording what it receives, Sum ignoring d_out (its grade
    output names entries of the hidden inputs), and a last cell that prints the record and tries the secret."""
    solutions = sample_class.solution_sources(course / "source" / ASSIGNMENT / NOTEBOOK)
    bug = sample_class.bug_catalog()["sum_d_out_ignored"]
    answers = {**solutions, "multiply_backward": PROBE + marker, "sum_backward": bug.source}
    nb = sample_class.student_notebook(course / "release" / ASSIGNMENT / NOTEBOOK, answers)
    nb.cells.append(new_code_cell(
        "print('received', hashlib.sha256(''.join(RECEIVED).encode()).hexdigest(), len(RECEIVED))\n"
        f"try:\n    print(open({str(secret_path)!r}).read())\nexcept Exception as e:\n"
        "    print('secret:', type(e).__name__)"))
    return nbformat.writes(nb).encode()


def graded_outputs(course, student):
    """(grade of each test cell, text of each test cell, what the last cell printed) of the autograded notebook."""
    nb = nbformat.read(course / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)
    tests = {c.metadata["nbgrader"]["grade_id"]: json.dumps(c.outputs, sort_keys=True) for c in nb.cells
             if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}
    last = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    with gradebook(course) as gb:
        grades = {g.name: g.score for n in gb.find_submission(ASSIGNMENT, student).notebooks for g in n.grades}
    return grades, tests, last


def test_hidden_inputs_follow_the_submission_and_the_secret_stays_with_the_course(tmp_path):
    assert PROBE.count("RECEIVED.append") == 1
    course = make_class(tmp_path / "course")
    secret_path = course / "seed_secret"
    submit(course, "pia", notebook_bytes=probe_notebook(course, secret_path))
    nbgrader(course, "autograde", ASSIGNMENT, "--student", "pia", "--force")
    first = graded_outputs(course, "pia")
    nbgrader(course, "autograde", ASSIGNMENT, "--student", "pia", "--force")
    assert graded_outputs(course, "pia") == first                      # re-grading: identical, outputs too
    grades, tests, last = first
    assert grades["test_sum_backward"] == 0.375 and sum(grades.values()) == 9.375
    assert last.startswith("received ") and "secret: FileNotFoundError" in last

    submit_again = probe_notebook(course, secret_path, marker="# resubmitted\n")
    (course / "submitted" / "pia" / ASSIGNMENT / NOTEBOOK).write_bytes(submit_again)
    nbgrader(course, "autograde", ASSIGNMENT, "--student", "pia", "--force")
    changed = graded_outputs(course, "pia")
    assert changed[0] == grades                                        # same answers, same points...
    assert changed[2].split()[:3] != last.split()[:3]                  # ...from other hidden inputs
    assert changed[1]["test_sum_backward"] != tests["test_sum_backward"]   # its worst entry, from other inputs

    run(course, "grading.cli.grade_class", "--workers", "2", "--student", "pia")  # workers get the secret
    assert graded_outputs(course, "pia") == changed

    nbgrader(course, "generate_feedback", ASSIGNMENT, "--student", "pia", "--force")
    secret = secret_path.read_bytes().strip()
    assert len(secret) == 64 and (secret_path.stat().st_mode & 0o077) == 0
    for folder in ("release", "autograded", "feedback", "submitted"):
        for path in (course / folder).rglob("*"):
            assert not path.is_file() or secret not in path.read_bytes(), path


# ------------------------------------------------------- exfiltrate, then resubmit with the answers (issue 21.6) -----

# nll_grad answered from a table of precomputed answers shipped as a file of the submission (answers.npz, keyed by
# a hash of the inputs); every input it has no answer for is recorded, and the last cell prints the record.
LOOKUP = '''
import base64, hashlib, io

def _key(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(repr((a.shape, a.dtype.str)).encode() + a.tobytes())
    return h.hexdigest()

try:
    ANSWERS = dict(np.load("answers.npz"))
except OSError:
    ANSWERS = {}
RECORD, HITS = {}, []

def nll_grad(X, W, b, Y):
    key = _key(X, W, b, Y)
    if key + "W" in ANSWERS:
        HITS.append(key)
        return ANSWERS[key + "W"].copy(), ANSWERS[key + "b"].copy()
    RECORD[key] = (X.copy(), W.copy(), b.copy(), Y.copy())
    return np.zeros_like(W), np.zeros_like(b)
'''
EXFILTRATE = ("buf = io.BytesIO()\n"
              "np.savez(buf, **{k + n: a for k, arrays in RECORD.items() for n, a in zip('XWbY', arrays)})\n"
              "print('answers', len(ANSWERS), 'hits', len(HITS))\n"
              "print('record', base64.b64encode(buf.getvalue()).decode())")


def _exfiltrated(course, student):
    """What the last cell printed: (its first line, the recorded inputs {key: (X, W, b, Y)})."""
    import base64
    import io

    import numpy as np
    nb = nbformat.read(course / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    first, record = text.split("\n")[0], text.split("record ", 1)[1].strip()
    arrays = np.load(io.BytesIO(base64.b64decode(record)))
    keys = sorted({name[:-1] for name in arrays.files})
    return first, {k: tuple(arrays[k + n] for n in "XWbY") for k in keys}


def test_a_file_of_answers_to_exfiltrated_hidden_inputs_does_not_replay(tmp_path):
    """Issue 21.6: a student prints the hidden inputs its nll_grad received, computes the answers offline and
    resubmits the same cells plus answers.npz. The salt covers every file that reaches the sandbox, so the
    resubmission is graded on other inputs: no answer of the file is used, the points stay what the lookup earns
    on its own. (Today's main: the same cells drew the same inputs, and nll_grad went from 0 to 3 of 3.)"""
    import io

    import numpy as np
    course = make_class(tmp_path / "course")
    with open(course / "nbgrader_config.py", "a") as config:   # a wide output channel, for the test's speed only
        config.write("\nc.TrustedExecute.max_output_bytes_per_cell = 256 << 20\n"
                     "c.TrustedExecute.max_output_bytes_per_notebook = 512 << 20\n"
                     "c.LimitOutput.max_lines = -1\nc.SandboxedKernelManager.max_message_mb = 128\n")
    nb = sample_class.student_notebook(course / "release" / ASSIGNMENT / NOTEBOOK, {"nll_grad": LOOKUP})
    nb.cells.append(new_code_cell(EXFILTRATE))
    folder = submit(course, "mallory", notebook_bytes=nbformat.writes(nb).encode())
    nbgrader(course, "autograde", ASSIGNMENT, "--student", "mallory", "--force")
    first_grades = graded_outputs(course, "mallory")[0]
    line, record = _exfiltrated(course, "mallory")
    assert line == "answers 0 hits 0" and record
    assert sum(first_grades.values()) == first_grades["test_nll_grad"] == 0.0     # zeros: nothing right

    answers = {}
    for key, (X, W, b, Y) in record.items():          # offline: the instructor's own nll_grad on each input
        answers[key + "W"], answers[key + "b"] = ref.nll_grad(X, W, b, Y)
    buf = io.BytesIO()
    np.savez(buf, **answers)
    (folder / "answers.npz").write_bytes(buf.getvalue())
    nbgrader(course, "autograde", ASSIGNMENT, "--student", "mallory", "--force")
    grades = graded_outputs(course, "mallory")[0]
    line, record_again = _exfiltrated(course, "mallory")
    assert line.startswith(f"answers {len(answers)} hits ")          # the file reached the kernel...
    assert grades == first_grades                                     # ...and earned nothing: 0, not 3 of 3
    assert record_again and not set(record_again) & set(record)       # the graded inputs were all new (the
    # hits: the public examples of the notebook's own self-check cells, which are never salted)
