"""The demo's own course directory (default demo/, git-ignored): `make demo` builds, grades and reports its
sample class there, so the demo never writes a student, a due date or a grade into the real course.

make_demo_course refreshes the folder's course files from this repository (course_dir.py), gives its
nbgrader_config.py the sample class's due date, generates the release into its release/ and writes the sample
class (sample_class.py). Gradebook, submissions, feedback and reports stay there until `make demo-clean`
removes it. Its command: grading/cli/demo_course.py (`make class`).
"""
from grading.course import ASSIGNMENT
from grading.courses import sample_class
from grading.courses.course_dir import REPO, make_course, run_nbgrader

DEMO = REPO / "demo"


def prepare_demo_course(root=DEMO, repo=REPO, db_url=None):
    """The demo's course files and release at `root`, its gradebook at `db_url` (default: root/gradebook.db);
    returns its Path."""
    course = make_course(root, repo)
    due = sample_class.DUE_DATE.strftime("%Y-%m-%d %H:%M:%S UTC")
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(f"\n# The demo's own due date (grading/courses/demo_course.py), whatever the real class's is.\n"
                     f"c.DueDate.due_date = {due!r}\n")
        if db_url:
            config.write(f"c.CourseDirectory.db_url = {db_url!r}\n")
    proc = run_nbgrader(course, "generate_assignment", ASSIGNMENT, "--force", "--log-level=WARN")
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader generate_assignment failed in {course}:\n{proc.stdout}{proc.stderr}")
    return course


def make_demo_course(root=DEMO, repo=REPO, db_url=None):
    """The demo course at `root`, ready to grade: course files, release and the sample class; returns its Path."""
    course = prepare_demo_course(root, repo, db_url)
    sample_class.write_sample_class(course)
    return course
