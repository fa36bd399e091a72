"""release/ is exactly what nbgrader generates from source/, leaks nothing, and behaves as a student expects."""
import filecmp
import json
import re
import shutil

import nbformat
from nbclient import NotebookClient
from nbgrader.utils import find_all_files

from conftest import ASSIGNMENT, RELEASE_DIR, REPO, SOURCE_NB, nbgrader, solution_and_hidden_lines
from grading.course import REFERENCE_MODULE, TRUSTED_MODULES
from grading.course_config import course_directory
from grading.fixtures import reference_solutions as ref
from grading.notebook_items import graded_items

STUB = "raise NotImplementedError()"
ANSWER_IDS = [c.id for c in nbformat.read(SOURCE_NB, as_version=4).cells
              if c.metadata.get("nbgrader", {}).get("solution")]
ITEMS = graded_items()
TOTAL = f"{sum(item.points for item in ITEMS):g}"
DEMOS = {"code-15": "Sum.backward", "code-21": "DotProduct.backward", "code-35": "nll_grad",
         "code-44": "LogisticRegression.step"}   # demo cell -> the first unfinished answer it needs


def _shown(cell, mime="text/plain"):
    """Everything a code cell showed, in order: streams and the given MIME type of its rich outputs."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("display_data", "execute_result") and mime in out.data:
            parts.append(out.data[mime] + "\n")
    return "".join(parts)


def _run_release(tmp_path, answers=None):
    """The release executed top to bottom as JupyterLab's Run All does: stop at the first error, except in
    cells tagged raises-exception. answers: {answer cell id: source} replacing stubs."""
    work = tmp_path / ASSIGNMENT
    shutil.copytree(RELEASE_DIR, work)
    nb = nbformat.read(work / "backprop.ipynb", as_version=4)
    for cell in nb.cells:
        cell.source = (answers or {}).get(cell.id, cell.source)
    NotebookClient(nb, timeout=300, allow_errors=False, resources={"metadata": {"path": str(work)}}).execute()
    return nb


def _normalised(path):
    """The notebook JSON with nothing nbgrader stamps per run (it stamps nothing today; keep the hook honest)."""
    return json.loads(path.read_text())


def test_release_matches_a_fresh_generation(course):
    fresh = course / "release" / ASSIGNMENT
    assert sorted(p.name for p in fresh.iterdir()) == sorted(p.name for p in RELEASE_DIR.iterdir())
    for path in fresh.iterdir():
        committed = RELEASE_DIR / path.name
        if path.suffix == ".ipynb":
            assert _normalised(path) == _normalised(committed), f"{path.name} drifted: run `make release`"
        else:
            assert filecmp.cmp(path, committed, shallow=False), f"{path.name} drifted: run `make release`"
    assert (RELEASE_DIR / "nn.py").read_text() == (REPO / "nn.py").read_text()


def test_no_instructor_only_line_reaches_release():
    secret = solution_and_hidden_lines()
    assert len(secret) >= 15  # the guard guards something: every solution and hidden-test line
    for path in RELEASE_DIR.rglob("*"):
        if path.is_file():
            text = path.read_text()
            leaked = [line for line in secret if line in text]
            assert not leaked, f"{path.name} leaks {leaked}"
            assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text


def test_each_answer_cell_is_a_stub_with_instructions_above():
    nb = nbformat.read(RELEASE_DIR / "backprop.ipynb", as_version=4)
    ids = [c.id for c in nb.cells]
    for grade_id in ANSWER_IDS:
        cell = nb.cells[ids.index(grade_id)]
        assert STUB in cell.source and cell.metadata.nbgrader["solution"]
        above = nb.cells[ids.index(grade_id) - 1]
        assert above.cell_type == "markdown" and "**Your task:**" in above.source
        below = nb.cells[ids.index(grade_id) + 1]
        assert below.metadata.nbgrader["grade"] and below.metadata.nbgrader["points"] > 0


def test_run_all_on_the_untouched_release_reaches_the_end_calmly(tmp_path):
    nb = _run_release(tmp_path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), [c.id for c in code if not c.execution_count]
    errors = [(c.id, o.ename) for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors and not any(o.get("name") == "stderr" for c in code for o in c.outputs), errors
    by_id = {c.id: c for c in code}
    for cell_id, item in DEMOS.items():   # one calm line, no traceback
        assert f"{item} is not implemented yet — skipping this demo\n" in _shown(by_id[cell_id]), cell_id
    for cell in code:
        if cell.metadata.get("nbgrader", {}).get("grade"):   # self-checks: red HTML, plain-text fallback
            item = re.search(r'self_check\("([^"]+)"', cell.source).group(1)
            assert _shown(cell).startswith(f"✗ {item}: not implemented yet (NotImplementedError)\n"
                                           f"  every sub-check and its points: gradcheck.grade(")
            html = _shown(cell, "text/html")
            assert 'class="gradcheck-fail"' in html and "color:#c62828" in html and "gradcheck.grade(" in html
    last = code[-1]
    assert last.source == "gradcheck.check_all(globals())"
    lines = _shown(last).splitlines()
    assert lines[-1] == f"Public checks: 0/{TOTAL} points"
    assert len(lines) == len(ITEMS) + 2 and all(line.startswith("✗ ") and " 0/" in line for line in lines[1:-1]), lines
    html = _shown(last, "text/html")
    assert html.startswith('<table class="gradcheck-summary">') and html.count('style="color:#c62828">✗') == len(ITEMS)
    assert f"Public checks: 0/{TOTAL} points" in html


def test_a_finished_answer_that_raises_shows_its_traceback_and_run_all_goes_on(tmp_path):
    broken = """
class Multiply:
    def forward(self, x, y):
        self.cache = (x, y)
        return x * y

    def backward(self, d_out):
        raise ValueError("shapes do not match")
"""
    syntax_error = "def nll_grad(X, W, b, Y:\n    return 0"
    finished_sum = ref.SOURCES["Sum.backward"]
    nb = _run_release(tmp_path, {"multiply_backward": broken, "sum_backward": finished_sum, "nll_grad": syntax_error})
    by_id = {c.id: c for c in nb.cells}
    demo_errors = [o for o in by_id["code-15"].outputs if o.output_type == "error"]
    assert [o.ename for o in demo_errors] == ["ValueError"] and "skipping" not in _shown(by_id["code-15"])
    assert any(o.output_type == "error" and o.ename == "SyntaxError" for o in by_id["nll_grad"].outputs)
    lines = _shown(nb.cells[-1]).splitlines()   # the check-everything cell still ran
    assert lines[-1] == f"Public checks: 1/{TOTAL} points" and lines[2].startswith("✓ Sum.backward")
    assert "✗ Multiply.backward" in lines[1] and "backward raised ValueError: shapes do not match" in lines[1]
    assert "✗ nll_grad" in lines[4] and "nll_grad is not defined: run its cell" in lines[4]


def test_cells_that_run_student_code_keep_run_all_going():
    nb = nbformat.read(RELEASE_DIR / "backprop.ipynb", as_version=4)
    answers = {item.name.split(".")[0] for item in ITEMS}   # Multiply, ..., nll_grad, LogisticRegression
    names = answers | {"mult", "vec_sum", "dp", "log_reg"}   # and the demos' objects
    for cell in nb.cells:
        uses = cell.cell_type == "code" and any(re.search(rf"\b{n}\b", cell.source) for n in names)
        if uses and cell is not nb.cells[-1]:
            assert "raises-exception" in cell.metadata.get("tags", []), cell.id


def test_validate_passes_on_instructor_notebook_and_reports_stubs_on_release(course):
    ok = nbgrader(course, "validate", f"source/{ASSIGNMENT}/backprop.ipynb")
    assert "Success! Your notebook passes all the tests." in ok.stdout
    bad = nbgrader(course, "validate", f"release/{ASSIGNMENT}/backprop.ipynb", check=False)
    assert "failed" in bad.stdout.lower() and "NotImplementedError" in bad.stdout


def test_point_split_adds_up_to_each_test_cells_points(monkeypatch):
    for path in (str(REPO), str(REPO / "source" / ASSIGNMENT)):
        monkeypatch.syspath_prepend(path)
    engine = __import__("gradcheck_engine")
    graded = {item.name: item.points for item in ITEMS}
    assert sorted(graded) == sorted(engine.ITEMS) and len(graded) == len(ITEMS)   # each item graded once
    for item, points in graded.items():
        assert engine.ITEMS[item].total == points, item
    assert [item.answer_id for item in ITEMS] == ANSWER_IDS   # every answer cell is graded, right below it


def test_both_checker_modules_are_released_and_trusted():
    for module in ("gradcheck", "gradcheck_engine"):
        assert (RELEASE_DIR / f"{module}.py").is_file() and module in TRUSTED_MODULES
    assert len((RELEASE_DIR / "gradcheck.py").read_text().splitlines()) <= 250   # a student reads it in minutes


def test_the_reference_backward_stays_instructor_side(course):
    """The grader's reference backward passes are a trusted module of source/ only: not in release/ (committed or
    freshly generated), none of their lines in any released file, and never among the files nbgrader autograde
    copies next to a student's notebook (CourseDirectory.ignore)."""
    source = SOURCE_NB.parent / f"{REFERENCE_MODULE}.py"
    assert source.is_file() and REFERENCE_MODULE in TRUSTED_MODULES
    assert not (RELEASE_DIR / source.name).exists()
    assert not (course / "release" / ASSIGNMENT / source.name).exists()
    code = [line.strip() for line in source.read_text().split('"""', 2)[2].splitlines()]   # after its docstring
    lines = {line for line in code if "d_" in line and not line.startswith(("#", "def "))}
    assert len(lines) >= 5   # the guard guards something: every gradient formula
    for path in RELEASE_DIR.rglob("*"):
        if path.is_file():
            leaked = [line for line in lines if line in path.read_text()]
            assert not leaked, f"{path.name} leaks {leaked}"
    coursedir = course_directory(course)
    copied = find_all_files(str(course / "source" / ASSIGNMENT), coursedir.ignore + ["*.ipynb"])
    assert copied and not [path for path in copied if path.endswith(source.name)]   # autograde's own rule


def test_students_page_lists_every_answer_students_fill_in():
    table = (REPO / "docs" / "students.md").read_text().split("| cell | what to implement |\n|---|---|\n", 1)[1]
    rows = table.split("\n\n", 1)[0].splitlines()
    assert [re.match(r"\| `([^`]+)` \|", row).group(1) for row in rows] == [item.name for item in ITEMS]
