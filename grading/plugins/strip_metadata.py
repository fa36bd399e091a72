"""``StripStudentMetadata``: the first sanitizing step (``c.Autograde.sanitize_preprocessors``). A submitted
notebook's metadata is the student's to write, and some of it is read later as if the grader had written it:

* ``metadata.grading`` is this bundle's key for the grader's own notes (grading/course.py): a forged
  ``duplicate_of`` or ``problems`` entry would show up in the grade report as if the grader had said it;
* nbconvert's templates put ``metadata.tags`` into class attributes and read ``jupyter.source_hidden``,
  ``widgets`` state and attachment names, i.e. student-chosen markup and behaviour in the feedback page and in
  formgrader.

So every cell keeps only the metadata nbgrader itself writes -- ``nbgrader`` (reduced to the properties of
nbgrader's own metadata schema; nbgrader validates the values afterwards) and the boolean
``deletable``/``editable`` flags of its locked cells -- and the notebook keeps only ``kernelspec`` and
``language_info``. Everything else is dropped, before any later step reads it.
"""
import json
from pathlib import Path

import nbgrader.nbgraderformat
from nbformat import from_dict
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import List, Unicode

# The properties nbgrader's metadata schema (v3) allows in metadata.nbgrader: one source, nbgrader's own file.
NBGRADER_KEYS = frozenset(json.loads((Path(nbgrader.nbgraderformat.__file__).parent / "v3.json").read_text())
                          ["properties"])


class StripStudentMetadata(NbGraderPreprocessor):
    """Drops every cell and notebook metadata key that nbgrader does not write itself."""

    notebook_keys = List(Unicode(), ["kernelspec", "language_info"],
                         help="Notebook metadata keys kept (OverwriteKernelspec sets the kernelspec).").tag(
        config=True)

    def preprocess(self, nb, resources):
        nb.metadata = from_dict({key: value for key, value in nb.metadata.items() if key in self.notebook_keys})
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, cell_index):
        kept = {key: cell.metadata[key] for key in ("deletable", "editable")
                if isinstance(cell.metadata.get(key), bool)}
        nbgrader = cell.metadata.get("nbgrader")
        if isinstance(nbgrader, dict):
            kept["nbgrader"] = {key: value for key, value in nbgrader.items() if key in NBGRADER_KEYS}
        cell.metadata = from_dict(kept)
        return cell, resources
