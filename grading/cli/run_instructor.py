"""Execute a notebook top to bottom in a fresh kernel and print what its cells printed.

    python -m grading.cli.run_instructor [NOTEBOOK]   (default: the instructor notebook, source/<ASSIGNMENT>/)

`make instructor` uses it on the instructor notebook: the printed numbers must be the seed's.
"""
import sys
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


def main(argv):
    path = argv[1] if len(argv) > 1 else INSTRUCTOR_NOTEBOOK
    nb = execute(path)
    for cell in nb.cells:
        text = printed_text(cell) if cell.cell_type == "code" else ""
        if text.strip():
            print(text, end="")
    print(f"executed {path} in a fresh kernel without errors")


if __name__ == "__main__":
    main(sys.argv)
