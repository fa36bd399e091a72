"""Benchmark: how fast a class is graded, measured side by side in one run on this machine.

    python benchmarks/bench_class.py [--students 40] [--workers N] [--repeats 3]

1. Hidden-test overhead: the instructor notebook executed in a plain kernel with and without its hidden-test
   regions (alternating runs, medians): what the hidden tests add to a notebook's execution time.
2. A class of --students submissions (the sample class's students, cycled) graded three ways:
   (a) sequential `nbgrader autograde` (the course's config: sandbox + trusted test cells),
   (b) `python -m grading.cli.grade_class --workers N` (the same grading, N at a time on a local Dask cluster),
   (c) the physical floor: `jupyter nbconvert --execute` of the same notebooks one after another, divided by N.
   It checks that (a) and (b) gave identical grades and prints the ratios (b)/(c) and (a)/(b).
Timings are wall-clock seconds; the machine may be shared, so compare the ratios of one run.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for the grading package

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

from grading.cli import report, sample_class  # noqa: E402
from grading.cli.course_dir import BIN, make_course, run_nbgrader  # noqa: E402
from grading.course import ASSIGNMENT, COURSE_ID, NOTEBOOK  # noqa: E402

HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", re.S)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def nbgrader(course, *args, timeout=900):
    proc = run_nbgrader(course, *args, timeout=timeout)
    if proc.returncode != 0:
        sys.exit(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def hidden_test_overhead(repeats):
    """Median seconds to execute the instructor notebook with and without its hidden tests."""
    with tempfile.TemporaryDirectory() as tmp:
        course = make_course(Path(tmp) / "course")
        folder = course / "source" / ASSIGNMENT
        with_tests = nbformat.read(folder / NOTEBOOK, as_version=4)
        without = nbformat.read(folder / NOTEBOOK, as_version=4)
        for cell in without.cells:
            cell.source = HIDDEN.sub("", cell.source)
        runs = {"with": [], "without": []}
        for _ in range(repeats):
            for name, nb in (("with", with_tests), ("without", without)):
                copy = nbformat.from_dict(nb)
                runs[name].append(timed(lambda: NotebookClient(
                    copy, timeout=300, resources={"metadata": {"path": str(folder)}}).execute()))
    return statistics.median(runs["with"]), statistics.median(runs["without"])


def build_class(root, students):
    """A course whose submitted/ holds `students` submissions: the sample class's plans, cycled."""
    course = make_course(root)
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    solutions = sample_class.solution_sources(course / "source" / ASSIGNMENT / NOTEBOOK)
    bugs = sample_class.bug_catalog()
    plans = list(sample_class.CLASS.values())
    roster = {}
    for i in range(students):
        first, hours_late, plan = plans[i % len(plans)]
        student = f"s{i + 1:03d}"
        sample_class.make_submission(course, student, hours_late, plan, solutions, bugs)
        roster[student] = first
    sample_class.register(course, COURSE_ID, roster)
    return course


def grades(course):
    return {r.student: (r.items, r.total, r.penalty) for r in report.load_report(course).rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant of the hidden-test overhead")
    args = parser.parse_args()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    os.environ.update(env)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
          f"{args.students} submissions, {args.workers} workers")

    with_t, without_t = hidden_test_overhead(args.repeats)
    print(f"hidden tests, in a plain kernel: notebook {with_t:.2f} s with, {without_t:.2f} s without "
          f"-> +{100 * (with_t / without_t - 1):.1f} % (target <= 10 %)")

    with tempfile.TemporaryDirectory() as tmp:
        seq = build_class(Path(tmp) / "sequential", args.students)
        par = Path(tmp) / "parallel"
        shutil.copytree(seq, par)
        # Copies of the class's notebooks for the floor, executed where they were submitted.
        floor_dir = Path(tmp) / "floor"
        shutil.copytree(seq / "submitted", floor_dir)

        t_a = timed(lambda: nbgrader(seq, "autograde", ASSIGNMENT, "--force", timeout=7200))
        print(f"(a) sequential nbgrader autograde: {t_a:7.1f} s ({t_a / args.students:.2f} s per submission)")

        t_b = timed(lambda: subprocess.run(
            [sys.executable, "-m", "grading.cli.grade_class", "--workers", str(args.workers)],
            cwd=par, env=env, check=True, capture_output=True, timeout=7200))
        print(f"(b) grading.cli.grade_class, {args.workers} workers: {t_b:7.1f} s")

        def execute_all():
            for nb in sorted(floor_dir.glob(f"*/{ASSIGNMENT}/{NOTEBOOK}")):
                subprocess.run([str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
                                "--allow-errors", "--output", "executed.ipynb", str(nb)],
                               cwd=nb.parent, env=env, check=True, capture_output=True, timeout=600)
        t_plain = timed(execute_all)
        t_c = t_plain / args.workers
        print(f"(c) floor: nbconvert --execute of the same notebooks {t_plain:.1f} s / {args.workers} = {t_c:.1f} s")

        same = grades(seq) == grades(par)
        print(f"grades of (a) and (b) identical: {same}")
        print(f"(b)/(c) = {t_b / t_c:.2f} (target <= 1.15); (a)/(b) = {t_a / t_b:.2f} (target >= 1.8)")
        if not same:
            sys.exit("grades differ between sequential and parallel grading")


if __name__ == "__main__":
    main()
