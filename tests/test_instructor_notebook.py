"""The instructor notebook, executed in a fresh kernel, prints exactly what the seed notebook printed."""
import nbformat
import pytest

from conftest import SOURCE_NB, make_course
from grading.courses.instructor_notebook import execute
from grading.notebook_items import graded_items

ITEMS = graded_items()
TOTAL = f"{sum(item.points for item in ITEMS):g}"

# Copied verbatim from the seed export (../shared/seed): the notebook's ground truth.
SEED_EPOCHS = """\
Epoch    0, loss = 2.3026
Epoch   25, loss = 0.3411
Epoch   50, loss = 0.2293
Epoch   75, loss = 0.1862
Epoch  100, loss = 0.1610
Epoch  125, loss = 0.1440
Epoch  150, loss = 0.1314
Epoch  175, loss = 0.1215
Epoch  200, loss = 0.1136
Epoch  225, loss = 0.1069
Epoch  250, loss = 0.1013
Epoch  275, loss = 0.0964
Epoch  300, loss = 0.0921
"""
SEED_TEST = "loss_test = 0.1511, accuracy_test = 0.956\n"
SEED_DOT = """\
(10.0,
 array([-1.,  0.,  1.,  2.], dtype=float32),
 array([1., 2., 3., 4.], dtype=float32))
"""
SEED_SHAPES = "((1797, 64), (1797, 10))\n"


def shown_text(cell):
    """What a code cell showed: its streams and the plain-text form of its results and displays (self-checks and
    the check-everything table are displays: HTML with a text/plain fallback)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/plain", "") + "\n")
    return "".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("instructor"))
    return execute(course / "source" / "ex09_backprop" / "backprop.ipynb")


def test_every_seed_number_is_reproduced(executed):
    code = [c for c in executed.cells if c.cell_type == "code"]
    printed = [shown_text(c) for c in code[:-1]]   # the last cell checks everything (below)
    printed = [p for p in printed if p.strip() and not p.startswith("✓")]
    assert printed == [SEED_SHAPES, SEED_DOT, SEED_DOT, SEED_EPOCHS, SEED_TEST, SEED_EPOCHS, SEED_TEST]


def test_check_everything_shows_full_public_points(executed):
    last = [c for c in executed.cells if c.cell_type == "code"][-1]
    assert last.source == "gradcheck.check_all(globals())"
    lines = shown_text(last).splitlines()
    assert lines[-1] == f"Public checks: {TOTAL}/{TOTAL} points"
    assert len(lines) == len(ITEMS) + 2 and all(line.startswith("✓ ") for line in lines[1:-1]), lines
    html = next(o.data["text/html"] for o in last.outputs if o.output_type == "display_data")
    assert html.startswith('<table class="gradcheck-summary">') and html.count('style="color:#1b7f2a">✓') == len(ITEMS)


def test_no_cell_errors_and_every_self_check_passes(executed):
    for cell in executed.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", (cell.id, out.get("ename"), out.get("evalue"))
    checks = [c for c in executed.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert [c.metadata.nbgrader["grade_id"] for c in checks] == [item.test_id for item in ITEMS]
    for cell in checks:
        assert shown_text(cell).startswith("✓ "), shown_text(cell)
        html = next(o.data["text/html"] for o in cell.outputs if o.output_type == "display_data")
        assert 'class="gradcheck-pass"' in html and "color:#1b7f2a" in html
    for cell in executed.cells:   # no demo skipped, no training warning
        assert "skipping this demo" not in shown_text(cell) and "⚠" not in shown_text(cell), cell.id


def test_seed_defects_are_fixed():
    nb = nbformat.read(SOURCE_NB, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    # The test loss is computed without a gradient step on the test set.
    assert "log_reg.step(X_test" not in text and "log_reg.loss(X_test, Y_test)" in text
    # predict's docstring gives the right shape; the maths uses K for classes throughout.
    assert "probabilities, shape (N, D)" not in text
    assert "^{C}" not in text
    # Seed slips (issue 12): the NLL's 1/N on both sides, one dot-product heading, no unused imports.
    assert r"-\frac{1}{N}\log p(\mathbf{Y} \mid" in text
    assert text.count("Dot product of two vectors") == 2   # "... as composition ...", "... as one operation"
    for unused in ("matplotlib", "import time", "plt."):
        assert unused not in text, unused
