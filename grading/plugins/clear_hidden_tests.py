"""``ClearHiddenTests`` for feedback (``c.GenerateFeedback.preprocessors``): nbgrader's step, but it reads only
autograder test cells.

Autograding restores each test cell's source from the gradebook, hidden tests included, and nbgrader would show
them in the feedback (nbgrader issue 1363), hence this step. nbgrader's own version scans *every* cell and
raises when a "BEGIN HIDDEN TESTS" marker appears outside a grade cell, or without its end marker: a student who
writes ``# ### BEGIN HIDDEN TESTS`` in an answer stops ``nbgrader generate_feedback`` for that submission (and it
exits 1). Test cells (graded, not solutions) are the only cells whose source is the instructor's -- the gradebook's
copy -- so they are the only ones read here; what a student wrote is theirs and is shown as written.
"""
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests as _ClearHiddenTests


class ClearHiddenTests(_ClearHiddenTests):
    """Removes the hidden-test regions of test cells and leaves every other cell alone."""

    def preprocess_cell(self, cell, resources, cell_index):
        if utils.is_grade(cell) and not utils.is_solution(cell):
            self._remove_hidden_test_region(cell)
        return cell, resources
