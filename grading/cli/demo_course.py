"""The demo's own course directory (default demo/, git-ignored), for `make demo` (`make class`).

    python -m grading.cli.demo_course [DIR]

Refreshes DIR's course files from this repository, gives DIR the sample class's due date, generates the release
and writes the sample class (grading/courses/demo_course.py). Gradebook, submissions, feedback and reports stay in
DIR until `make demo-clean` removes it.
"""
import argparse
from pathlib import Path

from grading.courses.demo_course import DEMO, prepare_demo_course
from grading.courses.sample_class import CLASS, DUE_DATE, write_sample_class


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("course", nargs="?", type=Path, default=DEMO, help=f"demo course directory (default: {DEMO})")
    try:
        course = prepare_demo_course(parser.parse_args(argv).course)
    except RuntimeError as problem:
        raise SystemExit(str(problem)) from None
    print(f"demo: course files and release in {course}/")
    for line in write_sample_class(course):
        print(line)
    print(f"registered {len(CLASS)} students and the due date {DUE_DATE:%Y-%m-%d %H:%M} UTC in the gradebook")


if __name__ == "__main__":
    main()
