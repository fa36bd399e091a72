"""Execute a notebook top to bottom in a fresh kernel and print what its cells printed.

    python -m grading.cli.run_instructor [NOTEBOOK]   (default: the instructor notebook, source/<ASSIGNMENT>/)

`make instructor` uses it on the instructor notebook: the printed numbers must be the seed's
(grading/courses/instructor_notebook.py).
"""
import sys

from grading.courses.instructor_notebook import INSTRUCTOR_NOTEBOOK, execute, printed_text


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
