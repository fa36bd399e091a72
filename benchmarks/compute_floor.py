"""The compute floor of a class: every submission's own code run in ONE warm interpreter, imports done once.

    python benchmarks/compute_floor.py SUBMITTED_DIR

For each submission SUBMITTED_DIR/<student>/<assignment>/<notebook>, the notebook's ordinary code cells (setup
cells and the student's answer cells; never the autograder test cells) are exec'd one after another in a fresh
namespace dict, with the submission's folder as the working directory, their output captured. Before the clock
starts, every import statement of those cells is run once, so the time counted is the students' code itself:
what any grader has to spend at the least. Run it with one thread per BLAS library (OMP_NUM_THREADS=1 ...), as
the sandbox does. It prints one JSON line: {"notebooks", "seconds" (all of them), "import_seconds" (once)}.
A cell that raises stops the run with its student and error: the floor of a broken notebook means nothing.
"""
import argparse
import ast
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for the course's facts

import nbformat  # noqa: E402
from nbgrader.utils import is_grade, is_solution  # noqa: E402

from grading.course import ASSIGNMENT, NOTEBOOK  # noqa: E402


def is_test_cell(cell):
    """An autograder test cell, as nbgrader defines it: graded and not an answer."""
    return is_grade(cell) and not is_solution(cell)


def ordinary_sources(nb_path):
    """The code cells a student's notebook runs by itself: every code cell but the autograder test cells."""
    nb = nbformat.read(nb_path, as_version=4)
    return [cell.source for cell in nb.cells if cell.cell_type == "code" and not is_test_cell(cell)]


def import_statements(sources):
    """The top-level import statements of the cells, as one module's source."""
    lines = []
    for source in sources:
        for node in ast.parse(source).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                lines.append(ast.unparse(node))
    return "\n".join(dict.fromkeys(lines))


@contextlib.contextmanager
def in_folder(folder):
    """Working directory and first sys.path entry `folder` (the notebook's own modules import from it)."""
    cwd, path = os.getcwd(), list(sys.path)
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path[:] = path


def run_cells(sources, folder, label):
    """Exec the cells in a fresh namespace, output captured; exits naming `label` if one raises."""
    namespace = {"__name__": "__main__"}
    sink = io.StringIO()
    with in_folder(folder), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        for index, source in enumerate(sources):
            try:
                exec(compile(source, f"<{label} cell {index}>", "exec"), namespace)
            except Exception as e:
                sys.exit(f"compute floor: {label}, ordinary cell {index} raised {type(e).__name__}: {e}")


def measure(submitted, assignment, notebook):
    """{"notebooks", "seconds", "import_seconds"} for every submission below `submitted`."""
    paths = sorted(Path(submitted).glob(f"*/{assignment}/{notebook}"))
    if not paths:
        sys.exit(f"compute floor: no {assignment}/{notebook} below {submitted}")
    notebooks = [(path.parent, ordinary_sources(path), path.parts[-3]) for path in paths]
    start = time.perf_counter()
    run_cells([import_statements(notebooks[0][1])], notebooks[0][0], "imports")
    import_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for folder, sources, student in notebooks:
        run_cells(sources, folder, student)
    return {"notebooks": len(notebooks), "seconds": time.perf_counter() - start, "import_seconds": import_seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submitted", help="the course's submitted/ directory")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.submitted, ASSIGNMENT, NOTEBOOK)))


if __name__ == "__main__":
    main()
