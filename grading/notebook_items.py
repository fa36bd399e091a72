"""The graded items as the instructor notebook declares them: what the sample class, the reports and the tests
derive their items and points from, instead of listing them again.

An item is an answer cell (an nbgrader solution cell) with its test cell right below it; the test cell's hidden
``gradcheck.grade("<item>", <impl>, seeds=(...))`` names the item in the checker's registry
(``gradcheck_engine.ITEMS``, which holds the point split), and its nbgrader ``points`` is the split's sum (a test
checks that). Adding a question is adding those two cells and a registry entry: see docs/instructors.md, "Add a
question".
"""
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grading.course import ASSIGNMENT, NOTEBOOK

# The source notebook next to this package: in the repository and in every course directory made from it.
SOURCE_NB = Path(__file__).resolve().parents[1] / "source" / ASSIGNMENT / NOTEBOOK
GRADE_CALL = re.compile(r'gradcheck\.grade\("([^"]+)",\s*\w+(?:,\s*seeds=\(([\d,\s]*)\))?')


@dataclass(frozen=True)
class GradedItem:
    name: str            # the registry key, e.g. "Sum.backward"
    answer_id: str       # the answer cell's id (= its nbgrader grade_id), e.g. "sum_backward"
    test_id: str         # the test cell's nbgrader grade_id, e.g. "test_sum_backward"
    points: float        # the test cell's nbgrader points
    seeds: tuple         # the seeds of the hidden grade call
    answer_source: str   # the instructor's answer cell, solution markers included


def graded_items(notebook=SOURCE_NB):
    """The notebook's graded items, in notebook order. A test cell must sit right under its answer cell."""
    items, answer = [], None
    for cell in nbformat.read(notebook, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        call = GRADE_CALL.search(cell.source) if meta.get("grade") else None
        if call:
            if answer is None:
                raise ValueError(f"test cell {meta['grade_id']} has no answer cell right above it")
            seeds = tuple(int(s) for s in call.group(2).replace(",", " ").split()) if call.group(2) else ()
            items.append(GradedItem(call.group(1), answer.id, meta["grade_id"], float(meta["points"]), seeds,
                                    answer.source))
        answer = cell if meta.get("solution") else None
    return items
