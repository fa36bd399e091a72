"""Feedback for every autograded submission, one student at a time, carrying on past failures (`make feedback`).

    python -m grading.cli.feedback [--course DIR] [--assignment ID]

Prints one line per student whose page nbgrader could not write, with nbgrader's reason, and exits 0
(grading/class_grading/feedback.py).
"""
import argparse
from pathlib import Path

from grading.class_grading.feedback import autograded_students, generate_feedback
from grading.course import ASSIGNMENT
from grading.terminal import clean_stdout


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
    with clean_stdout():   # no control character of a student's reaches the terminal
        main()
