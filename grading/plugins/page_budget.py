"""``BoundStudentCells``: a feedback step (``c.GenerateFeedback.preprocessors``) that bounds what the page shows of
each student cell, before nbconvert renders and highlights it.

nbconvert highlights every code cell with Pygments and renders every markdown cell in the grader's process, with
no limit of its own: one 6 MB code cell made a 154 MB feedback page, 11 GB and 7.5 minutes of `make feedback`.
Here every cell is measured first: a code cell over ``max_cell_kb`` is shown up to that size (cut at a line) and
a one-line note of how much is left out; a markdown or raw cell over it is shown as a plain code block (the cleaned
text as text: never cut in the middle of a tag, nothing parsed); a stream output over it is cut the same way. The
student's submitted notebook and the autograded one keep everything; only the page is shorter. Within the limit
(64 KB per cell by default) a page renders in about a second.
"""
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer

from grading.plugins.clean_html import fenced


def _cut(text, limit):
    """The first `limit` characters of `text`, cut back to the last line break when there is one."""
    head = text[:limit]
    return head[:head.rfind("\n") + 1] if "\n" in head else head


def _size(n):
    return f"{n / 1024:.0f} KB" if n < 1 << 20 else f"{n / (1 << 20):.1f} MB"


class BoundStudentCells(NbGraderPreprocessor):
    """Shortens cells and stream outputs over ``max_cell_kb`` for the feedback page (see the module docstring)."""

    max_cell_kb = Integer(64, help="What the feedback page shows of one cell or stream output at most.").tag(
        config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        limit = self.max_cell_kb << 10
        source = cell.source
        if len(source) > limit:
            note = (f"[grader: this cell is {_size(len(source))}; the feedback page shows its first "
                    f"{self.max_cell_kb} KB. The whole cell is in the submitted notebook.]")
            if cell.cell_type == "code":
                cell.source = _cut(source, limit) + "\n# " + note
            else:
                cell.source = fenced(_cut(source, limit)) + "\n\n" + note
                cell.cell_type = "markdown"
                cell.pop("attachments", None)
        for output in cell.get("outputs", []):
            text = output.get("text") if output.get("output_type") == "stream" else None
            if isinstance(text, str) and len(text) > limit:
                output.text = _cut(text, limit) + f"\n[grader: {_size(len(text))} of output; shown: the first " \
                                                  f"{self.max_cell_kb} KB]\n"
        return cell, resources
