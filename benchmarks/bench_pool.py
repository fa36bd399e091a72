"""Benchmark: local class grading on the worker pool (local_pool.py) against a Dask LocalCluster, side by side.

    python benchmarks/bench_pool.py [--students 12] [--workers 2] [--rounds 1]

The same class of --students correct submissions is graded by grade_class with --workers workers, each round
once per backend in alternation, each in a fresh copy of one course: (pool) the worker processes of
`grade_class --workers N`; (dask) a Dask LocalCluster of N worker processes (its profiler off, dask_tasks.py),
the same tasks and the same single writer. Printed per run: wall and CPU seconds per submission (grader and
kernels, benchmarks/cpu_accounting.py); the machine's load average before and after; whether both backends
wrote identical grades (exits non-zero if not).
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_class import (THREADS_ENV, bundle_course, copy_course, grade_differences, gradebook_grades,  # noqa: E402
                         load_average, run_timed)
from grading.course import ASSIGNMENT  # noqa: E402

GRADE = """import sys
from grading.class_grading.class_run import grade_class, submitted_students
problems = grade_class(".", {assignment!r}, submitted_students(".", {assignment!r}), workers={workers},
                       backend={backend!r})
print("problems:", problems)
sys.exit(1 if problems else 0)
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    os.environ.update(THREADS_ENV)
    print(f"load average before {load_average()}; {args.students} submissions, {args.workers} workers", flush=True)
    grades = {}
    with tempfile.TemporaryDirectory(prefix="bench_pool_") as tmp:
        course = bundle_course(Path(tmp) / "bundle", args.students)
        for round_ in range(args.rounds):
            for backend in ("pool", "dask"):
                copy = copy_course(course, Path(tmp) / f"{backend}{round_}")
                script = GRADE.format(assignment=ASSIGNMENT, workers=args.workers, backend=backend)
                run = run_timed([sys.executable, "-c", script], copy)
                kernels = "n/a" if run.kernel_cpu is None else f"{run.kernel_cpu / args.students:.3f}"
                grader = "n/a" if run.kernel_cpu is None else f"{(run.cpu - run.kernel_cpu) / args.students:.3f}"
                print(f"({backend}) round {round_ + 1}: wall {run.seconds / args.students:.3f} s, CPU "
                      f"{run.cpu / args.students:.3f} s (grader {grader}, kernels {kernels}) per submission",
                      flush=True)
                grades[backend] = gradebook_grades(copy)
    differences = grade_differences(grades["pool"], grades["dask"])
    print(f"load average after {load_average()}; grades of pool and dask: "
          f"{'identical' if not differences else 'DIFFERENT'}")
    if differences:
        sys.exit("\n".join(differences))


if __name__ == "__main__":
    main()
