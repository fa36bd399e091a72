"""The coordinator's half of one pass per submission: record what the Dask workers graded, as the gradebook's
single writer.

A worker ran nbgrader's full Autograde once, against a snapshot (autograde_one.py); here its result is recorded
as that Autograde would have recorded it in the course: autograded/<student>/<assignment>/ replaced by the
worker's files (removed when nbgrader removed them, on a failure), and the gradebook values it wrote set through
nbgrader's Gradebook API (gradebook_rows.py), in whatever database db_url names. Results are committed in
batches, each batch being whatever finished since the last look, so nothing finished waits.
"""
import shutil
from pathlib import Path

from nbgrader.api import Gradebook

from grading.class_grading.gradebook_rows import recorded_values, student_rows, write_values
from grading.course_config import course_directory


def replace_tree(dest, files):
    """Make `dest` hold exactly `files` ({relative path: (mode, bytes)}); none: remove it."""
    shutil.rmtree(dest, ignore_errors=True)
    for rel, (mode, data) in files.items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode & 0o777)   # never a set-user-ID bit from a submitted file on a grader-owned copy


class Recorder:
    """Reads what workers need from the course gradebook and writes back what they graded."""

    def __init__(self, course, assignment):
        self.assignment = assignment
        self.coursedir = course_directory(course)
        self.gb = Gradebook(self.coursedir.db_url, self.coursedir.course_id)
        self.before = {}  # student -> recorded_values when their task was made

    def rows_for(self, student):
        """The student's gradebook rows to ship with their task; remembers their values as they were."""
        with self.gb.engine.connect() as connection:
            rows = student_rows(connection, self.assignment, student)
        self.before[student] = recorded_values(self.gb, self.assignment, student)
        self.gb.db.rollback()  # end the read transaction: the worker's result is written in a fresh one
        return rows

    def record(self, graded):
        """Write one worker result (autograde_one.Graded) into autograded/ and the session; not committed."""
        cd = self.coursedir
        if graded.files is not None:
            replace_tree(Path(cd.format_path(cd.autograded_directory, graded.student, self.assignment)), graded.files)
        if graded.values is not None:
            write_values(self.gb, self.assignment, graded.student, self.before.get(graded.student), graded.values)

    def commit(self):
        self.gb.db.commit()

    def close(self):
        self.gb.close()
