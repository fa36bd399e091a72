"""Import the class roster into the gradebook (`make roster CSV=roster.csv`; grading/courses/roster.py).

    python -m grading.cli.roster roster.csv [--course DIR]

Prints each skipped row with its reason and exits 1 when any row was skipped.
"""
import argparse
from pathlib import Path

from grading.courses.roster import import_roster
from grading.terminal import clean_stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="the roster: id, first_name, last_name, email, lms_user_id")
    parser.add_argument("--course", type=Path, default=Path("."), help="course directory (default: here)")
    args = parser.parse_args(argv)
    try:
        imported, skipped = import_roster(args.course, args.csv)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        parser.exit(1, f"roster: {e}\n")
    for reason in skipped:
        print(f"roster: {args.csv.name} {reason}")
    print(f"roster: {len(imported)} students imported into the gradebook, {len(skipped)} rows skipped")
    if skipped:
        parser.exit(1)


if __name__ == "__main__":
    with clean_stdout():   # no control character of a student's reaches the terminal
        main()
