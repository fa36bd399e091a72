"""The demo's own course directory (default demo/, git-ignored): `make demo` builds, grades and reports its
sample class there, so the demo never writes a student, a due date or a grade into the real course.

    python -m grading.cli.demo_course [DIR]

Refreshes DIR's course files from this repository (grading/cli/course_dir.py), gives DIR's
nbgrader_config.py the sample class's due date, generates the release into DIR/release/ and writes the sample
class (grading/cli/sample_class.py). Gradebook, submissions, feedback and reports stay in DIR until
`make demo-clean` removes it.
"""
import argparse
from pathlib import Path

from grading.cli import sample_class
from grading.cli.course_dir import REPO, make_course, run_nbgrader
from grading.course import ASSIGNMENT

DEMO = REPO / "demo"


def make_demo_course(root=DEMO, repo=REPO, db_url=None):
    """The demo course at `root`, ready to grade, its gradebook at `db_url` (default: root/gradebook.db);
    returns its Path."""
    course = make_course(root, repo)
    due = sample_class.DUE_DATE.strftime("%Y-%m-%d %H:%M:%S UTC")
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(f"\n# The demo's own due date (grading/cli/demo_course.py), whatever the real class's is.\n"
                     f"c.DueDate.due_date = {due!r}\n")
        if db_url:
            config.write(f"c.CourseDirectory.db_url = {db_url!r}\n")
    proc = run_nbgrader(course, "generate_assignment", ASSIGNMENT, "--force", "--log-level=WARN")
    if proc.returncode != 0:
        raise SystemExit(f"nbgrader generate_assignment failed in {course}:\n{proc.stdout}{proc.stderr}")
    print(f"demo: course files and release in {course}/")
    sample_class.main(["--course", str(course)])
    return course


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("course", nargs="?", type=Path, default=DEMO, help=f"demo course directory (default: {DEMO})")
    make_demo_course(parser.parse_args(argv).course)


if __name__ == "__main__":
    main()
