"""Feedback for every autograded submission, one student at a time, carrying on past failures.

    python -m grading.cli.feedback [--course DIR] [--assignment ID]

`nbgrader generate_feedback` already goes on to the next student when one fails, but then exits 1, which stops
`make demo` before export and report. This runs nbgrader's own GenerateFeedback (NbGraderAPI.generate_feedback,
configured by nbgrader_config.py) per student, prints one line per student it could not do, with nbgrader's
reason, and exits 0: those students simply have no feedback page.
"""
import argparse
from pathlib import Path

from grading.cli.autograde_one import load_api
from grading.cli.report import reason_from_nbgrader_result
from grading.course import ASSIGNMENT


def autograded_students(course, assignment):
    return sorted(p.parent.name for p in (Path(course) / "autograded").glob(f"*/{assignment}") if p.is_dir())


def generate_feedback(course, assignment):
    """{student: one-line reason} for every autograded student whose feedback nbgrader could not write."""
    api = load_api(course)
    failed = {}
    for student in autograded_students(course, assignment):
        result = api.generate_feedback(assignment, student)
        if not result.get("success"):
            failed[student] = reason_from_nbgrader_result(result)
    return failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--course", default=".", type=Path, help="course directory (default: here)")
    parser.add_argument("--assignment", default=ASSIGNMENT)
    args = parser.parse_args(argv)
    students = autograded_students(args.course, args.assignment)
    failed = generate_feedback(args.course.resolve(), args.assignment)
    print(f"feedback: {len(students) - len(failed)}/{len(students)} pages in "
          f"feedback/<student>/{args.assignment}/")
    for student, reason in failed.items():
        print(f"  no feedback for {student}: {reason}")


if __name__ == "__main__":
    main()
