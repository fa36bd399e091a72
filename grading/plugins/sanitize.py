"""Two of nbgrader's sanitizing steps (``c.Autograde.sanitize_preprocessors``), made safe against submissions
whose nbgrader metadata is broken or forged. Use them in nbgrader_config.py::

    c.Autograde.sanitize_preprocessors = [
        "nbgrader.preprocessors.ClearOutput",
        "grading.plugins.sanitize.DeduplicateIds",
        "nbgrader.preprocessors.OverwriteKernelspec",
        "nbgrader.preprocessors.OverwriteCells",
        "grading.plugins.sanitize.CheckCellMetadata",
    ]

What goes wrong with nbgrader's own steps (0.9.6):

* ``DeduplicateIds`` keeps the last cell of each grade id and empties the metadata of the others
  (``metadata.nbgrader = {}``). An empty nbgrader dict has no ``schema_version``, so the check that follows
  raises ``SchemaTooOldError`` and the whole notebook is rejected ("nbgrader update ."): a student who copied a
  cell loses every point.
* ``CheckCellMetadata`` lets ``SchemaTooOldError``/``SchemaTooNewError`` escape, and nbgrader's converter turns
  those into an exception that ends the *whole* ``nbgrader autograde`` run: one submission with
  ``"schema_version": 99`` in any cell's metadata leaves every later student of the class ungraded.

Here a duplicate loses its nbgrader metadata entirely (it becomes an ordinary cell, which is what nbgrader meant)
and is marked ``metadata.grading.duplicate_of`` so grading.plugins.trusted_execute.TrustedExecute can say so in the
grade report;
a schema mismatch rejects that one notebook, like any other metadata that fails validation.
"""
from nbgrader import utils
from nbgrader.nbgraderformat import SchemaTooNewError, SchemaTooOldError, ValidationError
from nbgrader.preprocessors import CheckCellMetadata as _CheckCellMetadata
from nbgrader.preprocessors import DeduplicateIds as _DeduplicateIds

from grading.course import DUPLICATE_OF, METADATA_KEY

__all__ = ["DeduplicateIds", "CheckCellMetadata"]


class DeduplicateIds(_DeduplicateIds):
    """nbgrader's DeduplicateIds, but a dropped duplicate becomes an ordinary cell instead of one whose empty
    nbgrader metadata later fails validation."""

    def preprocess_cell(self, cell, resources, cell_index):
        if not (utils.is_grade(cell) or utils.is_solution(cell) or utils.is_locked(cell)):
            return cell, resources
        grade_id = cell.metadata.nbgrader.get("grade_id")
        if grade_id in self.grade_ids:
            self.log.warning("Cell with id '%s' exists multiple times! Treating the earlier copy as an ordinary "
                             "cell.", grade_id)
            del cell.metadata["nbgrader"]
            cell.metadata[METADATA_KEY] = {DUPLICATE_OF: str(grade_id)[:128]}
        else:
            self.grade_ids.add(grade_id)
        return cell, resources


class CheckCellMetadata(_CheckCellMetadata):
    """nbgrader's CheckCellMetadata, but a schema version mismatch rejects only this notebook."""

    def preprocess(self, nb, resources):
        try:
            return super().preprocess(nb, resources)
        except (SchemaTooOldError, SchemaTooNewError) as e:
            msg = f"Notebook failed to validate: nbgrader metadata of an unsupported schema version ({e})"
            self.log.error(msg)
            raise ValidationError(msg) from None
