"""Grades out of the gradebook, as `nbgrader export --exporter=...` plugins (`make export` runs both):

* ItemCsvExport: nbgrader's own CSV columns (those of `nbgrader export`, in its order) then one column per graded
  item, named as in the grade report (``test_sum_backward`` -> ``sum``), in notebook order;
* CanvasCsvExport: Canvas's gradebook import format ("Import" in Canvas's Grades page): the columns ``Student,
  ID, SIS User ID, SIS Login ID, Section`` then one assignment column named ``<title> (<Canvas assignment
  id>)``, a ``Points Possible`` row, and one row per student. Canvas matches a row by ``ID`` (the roster's
  ``lms_user_id``) and else by the name ``Last, First``; the SIS columns are left empty. The grade is the score
  after the late penalty; a student with no submission gets an empty cell (Canvas leaves that grade as it is).

Both export the course's one assignment (grading/course.py), every student of the roster.

* SafeCsvExport: nbgrader's own `nbgrader export` CSV (same columns, rows and numbers), written through the csv
  module -- nbgrader joins the values with commas as they are, so a name with a comma shifts the columns.

All three write through grading/spreadsheet.py: a name or other text that starts with ``= + - @``, a tab or CR
gets a leading quote, so it is never a live formula (configured as nbgrader's default exporter in
nbgrader_config.py, ``c.ExportApp.plugin_class``, so plain `nbgrader export` is safe too).
"""

from nbgrader.api import MissingEntry
from nbgrader.plugins import ExportPlugin
from traitlets import Unicode

from grading import spreadsheet
from grading.reporting.grades import in_notebook_order, short_name
from grading.course import ASSIGNMENT

NBGRADER_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                    "raw_score", "late_submission_penalty", "score", "max_score"]
CANVAS_STUDENT_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


def number(x):
    """2.0 -> '2', 7.75 -> '7.75'."""
    return f"{x:g}"


def submissions(gradebook, assignment):
    """(student, their submission or None) for every student of the gradebook, by student id."""
    for student in sorted(gradebook.students, key=lambda s: s.id):
        try:
            yield student, gradebook.find_submission(assignment, student.id)
        except MissingEntry:
            yield student, None


def final_score(submission):
    """What the student gets: max(0, score - late penalty), as `nbgrader export` computes it."""
    return max(0.0, submission.score - (submission.late_submission_penalty or 0.0))


class ItemCsvExport(ExportPlugin):
    """nbgrader's CSV columns plus one column per graded item (default file: grades_with_items.csv)."""

    def export(self, gradebook):
        assignment = gradebook.find_assignment(ASSIGNMENT)
        cells = [c.name for nb in assignment.notebooks
                 for c in in_notebook_order(self.parent.coursedir.root, ASSIGNMENT, nb)]
        with open(self.to or "grades_with_items.csv", "w", newline="") as f:
            out = spreadsheet.writer(f)
            out.writerow(NBGRADER_COLUMNS + [short_name(c) for c in cells])
            for student, sub in submissions(gradebook, ASSIGNMENT):
                points = {g.name: g.score for nb in sub.notebooks for g in nb.grades} if sub else {}
                scores = [sub.score, sub.late_submission_penalty or 0.0, final_score(sub)] if sub else [0.0] * 3
                out.writerow([ASSIGNMENT, assignment.duedate or "", (sub.timestamp if sub else None) or "",
                              student.id, student.last_name or "", student.first_name or "", student.email or "",
                              *map(number, scores), number(assignment.max_score),
                              *(number(points.get(c, 0.0)) for c in cells)])


class CanvasCsvExport(ExportPlugin):
    """Canvas's gradebook import CSV (default file: canvas_grades.csv)."""

    title = Unicode(ASSIGNMENT, help="The Canvas assignment's name.").tag(config=True)
    canvas_assignment_id = Unicode("", help="The Canvas assignment's id (in its URL); empty: Canvas creates a "
                                            "new assignment named `title` on import.").tag(config=True)

    def export(self, gradebook):
        assignment = gradebook.find_assignment(ASSIGNMENT)
        column = f"{self.title} ({self.canvas_assignment_id})" if self.canvas_assignment_id else self.title
        with open(self.to or "canvas_grades.csv", "w", newline="") as f:
            out = spreadsheet.writer(f)
            out.writerow(CANVAS_STUDENT_COLUMNS + [column])
            out.writerow(["Points Possible", "", "", "", "", number(assignment.max_score)])
            for student, sub in submissions(gradebook, ASSIGNMENT):
                if not student.lms_user_id:
                    self.log.warning("%s has no lms_user_id: Canvas can match them by name only", student.id)
                name = ", ".join(n for n in (student.last_name, student.first_name) if n)
                out.writerow([name, student.lms_user_id or "", "", "", "", number(final_score(sub)) if sub else ""])


class SafeCsvExport(ExportPlugin):
    """nbgrader's CsvExportPlugin (its columns, rows and number format), every cell safe for spreadsheets."""

    def export(self, gradebook):
        students, assignments = [str(s) for s in self.student], [str(a) for a in self.assignment]
        with open(self.to or "grades.csv", "w", newline="") as f:
            out = spreadsheet.writer(f, lineterminator="\n")
            out.writerow(NBGRADER_COLUMNS)
            for assignment in gradebook.assignments:
                if assignments and assignment.name not in assignments:
                    continue
                for student in gradebook.students:
                    if not students or student.id in students:
                        out.writerow(["" if v is None else str(v) for v in self.row(gradebook, assignment, student)])

    @staticmethod
    def row(gradebook, assignment, student):
        """The values nbgrader's CSV export writes for one student and assignment, in NBGRADER_COLUMNS order."""
        try:
            sub = gradebook.find_submission(assignment.name, student.id)
            scores = [sub.timestamp, sub.score, sub.late_submission_penalty,
                      max(0.0, sub.score - sub.late_submission_penalty)]
        except MissingEntry:
            scores = ["", 0.0, 0.0, 0.0]
        return [assignment.name, assignment.duedate, scores[0], student.id, student.last_name, student.first_name,
                student.email, *scores[1:], assignment.max_score]
