"""Which cells are autograder tests, according to the gradebook (never to the submitted notebook's metadata).

A cell qualifies only if its ``grade_id`` is a locked, graded, non-solution code cell of this notebook in the
gradebook, and what runs is the gradebook's copy of its source: student-edited metadata cannot turn a student cell
into trusted code, and an edited test cell runs as the instructor wrote it.
"""
from __future__ import annotations

import logging
import typing as t

from nbformat import NotebookNode

from grading.course import DUPLICATE_OF, METADATA_KEY


def grade_id(cell: NotebookNode) -> str | None:
    """The cell's nbgrader grade_id, if it has a well-formed one (the metadata is the student's to forge)."""
    md = cell.metadata.get("nbgrader") if isinstance(cell.metadata, dict) else None
    gid = md.get("grade_id") if isinstance(md, dict) else None
    return gid if isinstance(gid, str) else None


def sources_of_test_cells(info: t.Mapping, course_id: str, log: logging.Logger) -> dict[str, str]:
    """grade_id -> source of every autograder test cell of the notebook that nbgrader's resources["nbgrader"]
    (`info`) describe, from the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    db_url, notebook, assignment = info.get("db_url"), info.get("notebook"), info.get("assignment")
    if not (db_url and notebook and assignment):
        log.warning("TrustedExecute: no gradebook information; no cell will be run as a trusted test")
        return {}
    out = {}
    with Gradebook(db_url, course_id) as gb:
        try:
            nb = gb.find_notebook(notebook, assignment)
        except MissingEntry:
            return {}
        solutions = {c.name for c in nb.solution_cells}
        for gc in nb.grade_cells:
            if gc.cell_type != "code" or gc.name in solutions:
                continue
            try:
                sc = gb.find_source_cell(gc.name, notebook, assignment)
            except MissingEntry:
                continue
            if sc.locked and sc.cell_type == "code":
                out[gc.name] = sc.source
    return out


def structure_notes(nb: NotebookNode, tests: t.Collection[str]) -> list[tuple[int | None, str]]:
    """(cell index or None, note) on test cells nbgrader will not score: missing from the notebook, or copies that
    grading.plugins.sanitize.DeduplicateIds turned into ordinary cells."""
    notes: list[tuple[int | None, str]] = []
    present = set()
    for index, cell in enumerate(nb.cells):
        md = cell.metadata if isinstance(cell.metadata, dict) else {}
        ours = md.get(METADATA_KEY)
        dup = ours.get(DUPLICATE_OF) if isinstance(ours, dict) else None
        if isinstance(dup, str) and dup.isprintable():
            notes.append((index, f"duplicate grade id {dup[:64]}: this copy ran as an ordinary cell"))
        gid = grade_id(cell)
        if gid is not None:
            present.add(gid)
    notes += [(None, f"test cell {gid} is missing from the notebook") for gid in sorted(set(tests) - present)]
    return notes


def claims_test(cell: NotebookNode) -> bool:
    """Does the cell's (student-editable) metadata say it is an autograder test cell?"""
    md = cell.metadata.get("nbgrader") if isinstance(cell.metadata, dict) else None
    return isinstance(md, dict) and bool(md.get("grade")) and not md.get("solution")
