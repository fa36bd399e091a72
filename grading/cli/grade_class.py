"""Autograde every submission of an assignment, with progress, on one core or many, locally or on Dask.

    python -m grading.cli.grade_class [--workers N] [--scheduler tcp://host:8786] [--task-timeout S] [--force]
                                      [--student ID ...]

The command of class grading (`make autograde`): how a run grades, records and skips is in
grading/class_grading/class_run.py. A run grades only what is missing or changed; --force grades every submission
named. Whatever goes wrong with one submission is that student's one-line problem, and the run goes on.
"""
import argparse
import os
import time
from pathlib import Path

from grading.class_grading.class_run import TASK_TIMEOUT, grade_class, plan_run
from grading.course import ASSIGNMENT
from grading.terminal import clean_stdout


class Progress:
    """One line per finished submission: which student, how many are done and left, time per student, ETA."""

    def __init__(self, total):
        self.total, self.done, self.start = total, 0, time.monotonic()

    def __call__(self, student, seconds, problem=None):
        self.done += 1
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        status = f"FAILED: {problem}" if problem else "graded"
        print(f"[{self.done:>3}/{self.total}] {student:<12} {status} in {seconds:5.1f} s"
              f" | {self.total - self.done} left, ETA {eta:5.1f} s", flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Autograde every submission of an assignment.")
    parser.add_argument("--course", default=".", help="course directory (default: here)")
    parser.add_argument("--assignment", default=ASSIGNMENT)
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="worker processes on this machine, one kernel each (default: cores)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (default: local worker processes)")
    parser.add_argument("--task-timeout", type=float, default=TASK_TIMEOUT,
                        help=f"seconds one submission may take on a worker (default: {TASK_TIMEOUT:g}; "
                             "0: no limit); over it, the student gets a one-line problem")
    parser.add_argument("--student", action="append", help="grade only these students (repeatable)")
    parser.add_argument("--force", action="store_true",
                        help="grade every submission named, even those graded since they last changed")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    course = Path(args.course).resolve()
    students, skipped = plan_run(course, args.assignment, args.student, args.force)
    if skipped:
        print(f"{len(skipped)} submission(s) already graded and unchanged: skipped (--force grades them again)")
    print(f"autograding {len(students)} submissions of {args.assignment} with "
          f"{'the Dask scheduler at ' + args.scheduler if args.scheduler else f'{args.workers} worker(s)'}")
    start = time.monotonic()
    problems = grade_class(course, args.assignment, students, args.workers, args.scheduler, args.task_timeout,
                           on_graded=Progress(len(students)))
    print(f"graded {len(students) - len(problems)}/{len(students)} submissions in {time.monotonic() - start:.1f} s")
    for student, problem in sorted(problems.items()):
        print(f"  {student}: {problem}")


if __name__ == "__main__":
    with clean_stdout():   # no control character of a student's reaches the terminal
        main()
