"""Import the class roster into the gradebook (`make roster CSV=roster.csv`), so that formgrader shows names and
LMS zips (`make collect-lms`) and LMS grade files (`make export`) can be matched to students.

Its command: python -m grading.cli.roster roster.csv [--course DIR]

The CSV has nbgrader's student columns (those of `nbgrader db student import`): ``id`` (required: the student's
folder name under submitted/), ``first_name``, ``last_name``, ``email`` and ``lms_user_id`` (Canvas: the user's
numeric id, the "ID" column of Canvas's gradebook export). Each row goes through nbgrader's
``Gradebook.update_or_create_student``; importing again updates. A row that cannot be used (no id, an id that
is not a valid student id (grading/student_ids.py), an id, email or LMS id another row has) is skipped with its
one-line reason; the others are imported.
"""
import csv

from nbgrader.api import Gradebook

from grading.course_config import course_directory
from grading.student_ids import id_problem

FIELDS = ("id", "first_name", "last_name", "email", "lms_user_id")
UNIQUE = ("id", "email", "lms_user_id")


def read_roster(path):
    """(rows to import, [one-line reason per skipped row]); each row a dict over FIELDS, '' -> None."""
    with open(path, newline="", encoding="utf-8-sig") as f:   # utf-8-sig: a spreadsheet's byte-order mark
        reader = csv.DictReader(f)
        header = [name.strip() for name in reader.fieldnames or []]
        if "id" not in header:
            raise ValueError(f"{path}: no 'id' column (columns: {', '.join(header) or 'none'})")
        reader.fieldnames = header
        rows, skipped, seen = [], [], {key: {} for key in UNIQUE}
        for line, raw in enumerate(reader, start=2):
            row = {key: (raw.get(key) or "").strip() or None for key in FIELDS}
            reason = problem(row, seen)
            if reason:
                skipped.append(f"line {line}: {reason}, skipped")
                continue
            for key in UNIQUE:
                if row[key]:
                    seen[key][row[key].lower()] = line
            rows.append(row)
    return rows, skipped


def problem(row, seen):
    """Why a roster row cannot be imported, or None."""
    if not row["id"]:
        return "no id"
    if id_problem(row["id"]):
        return id_problem(row["id"])
    for key in UNIQUE:
        if row[key] and row[key].lower() in seen[key]:
            return f"{key} {row[key]!r} is already on line {seen[key][row[key].lower()]}"
    return None


def import_roster(course, path):
    """Import the roster at `path` into the course's gradebook; returns (imported ids, skipped reasons)."""
    rows, skipped = read_roster(path)
    coursedir = course_directory(course)
    with Gradebook(coursedir.db_url, coursedir.course_id) as gb:
        for row in rows:
            gb.update_or_create_student(row["id"], **{k: v for k, v in row.items() if k != "id"})
    return [row["id"] for row in rows], skipped
