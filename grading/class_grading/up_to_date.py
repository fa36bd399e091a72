"""Which submissions a class run may skip: those already graded, from inputs that have not changed since.

Class grading keeps autograded/<GRADED_FILE>, {student: digest}, where the digest covers what grading
that submission read: its files (through the intake, grading/plugins/intake.py; timestamp.txt among them) and the
course's grading inputs (nbgrader_config.py, nn.py, the seed secret, source/<assignment>/, the grading package's
code). A submission is up to date, and a run without --force skips it, when its digest is unchanged, its
autograded notebooks exist and the gradebook has its submission. Anything else -- new, resubmitted, never graded,
failed last time, interrupted, the config, the source notebook or the grader edited -- is graded again. What the
digest cannot see (an extension or due date changed in the gradebook, a manual edit of autograded/) needs --force.

A mark is written only after the submission's grades are committed, and dropped before they are rewritten, so
a run killed at any moment leaves no mark on a half-recorded submission.
"""
import hashlib
import json
import os
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

import grading
from grading.class_grading.autograde_one import regular_files
from grading.class_grading.ship_package import ShipPackage
from grading.course import GRADED_FILE
from grading.course_config import nbgrader_api
from grading.plugins.intake import SubmissionIntake
from grading.trusted.seed_salt import SeedSalt


def _digest(*parts):
    digest = hashlib.sha256()
    for files in parts:
        for rel, data in sorted(files.items()):
            digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


class GradedMarks:
    """autograded/<GRADED_FILE> of one course and assignment: which submissions are up to date."""

    def __init__(self, course, assignment):
        self.course, self.assignment = Path(course), assignment
        self.api = nbgrader_api(course)
        cd = self.api.coursedir
        self.path = Path(cd.root) / cd.autograded_directory / GRADED_FILE
        self.marks = json.loads(self.path.read_text()) if self.path.exists() else {}
        inputs = {rel: (self.course / rel).read_bytes() for rel in ("nbgrader_config.py", "nn.py")
                  if (self.course / rel).is_file()}
        # created now if the course has none yet, as grading would: the digest covers the secret graded with
        inputs["seed_secret"] = SeedSalt(config=self.api.config).secret(str(self.course))
        source = self.course / cd.source_directory / assignment
        inputs.update({f"source/{rel}": data for rel, data in regular_files(source).items()})
        inputs["grading package"] = ShipPackage(Path(grading.__file__).parent).version.encode()   # the grader's code
        self.inputs = inputs
        self.intake = SubmissionIntake.for_course(course)

    def digest(self, student, files=None):
        """The digest of grading `student`'s submission now (`files`: the submission as the intake reads it)."""
        if files is None:
            files = self.intake.read(self.course / self.api.coursedir.submitted_directory, student, self.assignment)
        return _digest(self.inputs, {f"submitted/{rel}": data for rel, data in files.items()})

    def up_to_date(self, students):
        """The students of `students` whose submission need not be graded again."""
        cd = self.api.coursedir
        marked = [s for s in students if s in self.marks and self.marks[s] == self.digest(s)]
        current = []
        with Gradebook(cd.db_url, cd.course_id) as gb:
            for student in marked:
                graded = Path(cd.format_path(cd.autograded_directory, student, self.assignment))
                submitted = Path(cd.format_path(cd.submitted_directory, student, self.assignment))
                notebooks = [p.name for p in submitted.glob("*.ipynb")]
                try:
                    gb.find_submission(self.assignment, student)
                except MissingEntry:
                    continue
                if notebooks and all((graded / name).is_file() for name in notebooks):
                    current.append(student)
        return current

    def update(self, marks):
        """Set {student: digest} (None: drop the student's mark) and write the file whole."""
        for student, digest in marks.items():
            if digest is None:
                self.marks.pop(student, None)
            else:
                self.marks[student] = digest
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(dict(sorted(self.marks.items())), indent=1) + "\n")
        os.replace(tmp, self.path)  # a run killed mid-write leaves the old file, never half a file
