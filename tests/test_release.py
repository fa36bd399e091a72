"""release/ is exactly what nbgrader generates from source/, leaks nothing, and behaves as a student expects."""
import filecmp
import json

import nbformat
import pytest

from conftest import ASSIGNMENT, RELEASE_DIR, REPO, nbgrader, solution_and_hidden_lines

STUB = "raise NotImplementedError()"
ANSWER_IDS = ["multiply_backward", "sum_backward", "dot_product_backward", "nll_grad", "logreg_step"]


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


def test_release_runs_top_to_bottom_and_only_stubs_fail(tmp_path):
    from grading.cli.run_instructor import printed_text
    from nbclient import NotebookClient
    import shutil

    work = tmp_path / ASSIGNMENT
    shutil.copytree(RELEASE_DIR, work)
    nb = nbformat.read(work / "backprop.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, allow_errors=True, resources={"metadata": {"path": str(work)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    raised = [next((o.ename for o in c.outputs if o.output_type == "error"), None) for c in code]
    assert raised.count("NotImplementedError") >= 4, raised  # every cell that calls a stub
    for before, (cell, ename) in zip([None] + raised, zip(code, raised)):
        # The only other failures: a cell printing the results of the stubbed cell just above it.
        assert ename in (None, "NotImplementedError") or (ename == "NameError" and before), (cell.id, ename)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            assert printed_text(cell).startswith("✗ ") and "not implemented" in printed_text(cell)


def test_validate_passes_on_instructor_notebook_and_reports_stubs_on_release(course):
    ok = nbgrader(course, "validate", f"source/{ASSIGNMENT}/backprop.ipynb")
    assert "Success! Your notebook passes all the tests." in ok.stdout
    bad = nbgrader(course, "validate", f"release/{ASSIGNMENT}/backprop.ipynb", check=False)
    assert "failed" in bad.stdout.lower() and "NotImplementedError" in bad.stdout


def test_point_split_adds_up_to_each_test_cells_points():
    import importlib.util
    import re
    spec = importlib.util.spec_from_file_location("gradcheck", REPO / "source" / ASSIGNMENT / "gradcheck.py")
    import sys
    sys.path.insert(0, str(REPO))
    gradcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gradcheck)
    nb = nbformat.read(REPO / "source" / ASSIGNMENT / "backprop.ipynb", as_version=4)
    graded = {}
    for cell in nb.cells:
        m = re.search(r'gradcheck\.grade\("([^"]+)"', cell.source)
        if m:
            graded[m.group(1)] = cell.metadata.nbgrader["points"]
    assert sorted(graded) == sorted(gradcheck.ITEMS) and sum(graded.values()) == 10
    for item, points in graded.items():
        assert sum(gradcheck.ITEMS[item].points.values()) == points, item
