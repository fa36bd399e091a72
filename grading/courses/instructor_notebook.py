"""Execute a notebook top to bottom in a fresh kernel, and what its cells printed.

`make instructor` (grading/cli/run_instructor.py) uses it on the instructor notebook: the printed numbers must be
the seed's.
"""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from grading.course import ASSIGNMENT, NOTEBOOK

INSTRUCTOR_NOTEBOOK = Path("source") / ASSIGNMENT / NOTEBOOK


def execute(path, timeout=300):
    """Return the notebook at `path` executed in a fresh kernel whose working directory is its folder."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def printed_text(cell):
    """What a code cell showed: its stdout and the plain-text form of its result."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "execute_result":
            parts.append(out.data.get("text/plain", "") + "\n")
    return "".join(parts)
