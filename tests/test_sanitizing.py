"""The two small nbgrader steps of this change, on the real notebooks: student metadata stripped before grading
(grading/plugins/strip_metadata.py) and hidden tests cleared from test cells only (grading/plugins/
clear_hidden_tests.py). End to end, with the report and feedback pages: tests/test_hostile_submissions.py
(forged-notes, hidden-marker)."""
import copy

import nbformat
import pytest
from nbgrader.preprocessors import ClearHiddenTests as StockClearHiddenTests
from nbgrader.preprocessors import CheckCellMetadata

from conftest import RELEASE_DIR, SOURCE_NB, solution_and_hidden_lines
from grading.plugins.clear_hidden_tests import ClearHiddenTests
from grading.plugins.strip_metadata import NBGRADER_KEYS, StripStudentMetadata
from hostile_catalog import MARKER


def release():
    return nbformat.read(RELEASE_DIR / "backprop.ipynb", as_version=4)


def test_student_metadata_is_stripped_and_nbgraders_own_kept():
    nb = release()
    nb.metadata["grading"] = {"problems": ["FORGED"]}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    answer = next(c for c in nb.cells if c.id == "sum_backward")
    answer.metadata["grading"] = {"duplicate_of": "FORGED"}
    answer.metadata["tags"] = ['"><script>']
    answer.metadata["nbgrader"]["forged"] = 1
    answer.metadata["deletable"] = "not a bool"
    stripped, _ = StripStudentMetadata().preprocess(copy.deepcopy(nb), {})
    assert stripped.metadata == release().metadata  # kernelspec and language_info only
    for cell, original in zip(stripped.cells, release().cells):  # the forged deletable was not a bool: dropped
        kept = {key: value for key, value in original.metadata.items() if key in ("nbgrader", "deletable", "editable")}
        assert cell.metadata == (kept if cell.id != "sum_backward" else {"nbgrader": original.metadata.nbgrader})
    assert any("tags" in c.metadata for c in release().cells)  # the release's own tags go too (display only)
    assert {"grade_id", "points", "schema_version", "checksum"} <= NBGRADER_KEYS and "forged" not in NBGRADER_KEYS
    CheckCellMetadata().preprocess(stripped, {})  # what nbgrader then validates passes


def notebook_with_marker():
    """The instructor notebook (hidden tests in its test cells) with the marker comment in two answers."""
    nb = nbformat.read(SOURCE_NB, as_version=4)
    for cell in nb.cells:
        if cell.id in ("multiply_backward", "sum_backward"):
            cell.source = MARKER + cell.source
    return nb


def test_stock_clear_hidden_tests_stops_on_a_marker_in_an_answer():
    with pytest.raises(RuntimeError):
        StockClearHiddenTests().preprocess(notebook_with_marker(), {})


def test_hidden_tests_are_cleared_from_test_cells_only():
    nb, _ = ClearHiddenTests().preprocess(notebook_with_marker(), {})
    text = "\n".join(c.source for c in nb.cells)
    hidden = {line for line in solution_and_hidden_lines() if line.startswith("gradcheck.grade(")}
    assert hidden and not any(line in text for line in hidden)
    assert text.count(MARKER) == 2  # the student's comments stay as written
    assert "### END HIDDEN TESTS" not in text
