"""Class grade report for one assignment, read from nbgrader's gradebook.

    python -m grading.cli.report --course DIR [--out DIR] [--assignment ID] [--course-id ID]

prints a table (one row per student, one column per graded cell) and writes OUT/grades_by_item.csv and
OUT/grades_overview.png (score distribution and per-item pass rate), then the misconception report
(OUT/misconceptions.csv and .png). OUT defaults to DIR/reports. The reports themselves are the library package
grading/reporting/ (grades.py, mistakes.py); this module only parses arguments and prints.
"""
import argparse
from pathlib import Path

from grading.course import ASSIGNMENT
from grading.reporting import mistakes
from grading.reporting.grades import format_table, load_report, plot_overview, write_csv
from grading.terminal import clean_stdout


def main(argv=None):
    """CLI: print the table, write the CSV and PNG."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--course", required=True, type=Path, help="course directory (holds gradebook.db)")
    parser.add_argument("--out", type=Path, help="output directory (default: COURSE/reports)")
    parser.add_argument("--assignment", default=ASSIGNMENT)
    parser.add_argument("--course-id", help="default: CourseDirectory.course_id from COURSE/nbgrader_config.py")
    args = parser.parse_args(argv)
    try:
        report = load_report(args.course, args.assignment, args.course_id)
    except (FileNotFoundError, LookupError) as problem:
        parser.exit(1, f"grading.cli.report: {problem}\n")
    out = args.out or args.course / "reports"
    out.mkdir(parents=True, exist_ok=True)
    write_csv(report, out / "grades_by_item.csv")
    plot_overview(report, out / "grades_overview.png")
    print(format_table(report))
    print(f"wrote {out / 'grades_by_item.csv'} and {out / 'grades_overview.png'}")
    mistakes.write_report(args.course, out, args.assignment, args.course_id)


if __name__ == "__main__":
    with clean_stdout():   # no control character of a student's reaches the terminal
        main()
