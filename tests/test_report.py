"""grading.cli.report reads a real nbgrader gradebook and writes the table, CSV and overview PNG."""
import csv
import struct
import subprocess
import sys

import pytest

from conftest import ASSIGNMENT, REPO
from graded_course import FULL as ITEM_MAX
from graded_course import ITEMS, LATE_STUDENTS, MAX_SCORE, STUDENTS, UNTOUCHED, graded_course  # noqa: F401 -- fixture
from grading.reporting import grades as report
from grading.course import COURSE_ID
from grading.course_config import course_id


def png_size(path):
    """(width, height) of a PNG file, after checking its signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_course_id_comes_from_nbgrader_config():
    assert course_id(REPO) == COURSE_ID


def test_missing_gradebook_is_an_error_not_an_empty_report(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text((REPO / "nbgrader_config.py").read_text())
    with pytest.raises(FileNotFoundError, match="autograde"):
        report.load_report(tmp_path)
    assert not (tmp_path / "gradebook.db").exists()


def test_report_has_a_row_per_student_and_a_column_per_item(graded_course):
    rep = report.load_report(graded_course)
    assert rep.assignment == ASSIGNMENT
    assert rep.items == ITEMS and rep.item_max == ITEM_MAX and rep.max_score == MAX_SCORE
    assert [r.student for r in rep.rows] == sorted(STUDENTS)
    for row in rep.rows:
        assert list(row.items) == ITEMS and row.max_score == MAX_SCORE
        assert all(0 <= row.items[i] <= ITEM_MAX[i] for i in ITEMS)
        assert row.total == pytest.approx(sum(row.items.values()))
        assert row.score == pytest.approx(max(0.0, row.total - row.penalty))
        assert 0 <= row.penalty <= row.total and (row.penalty == 0 or row.student in LATE_STUDENTS)
    untouched = next(r for r in rep.rows if r.student == UNTOUCHED)
    assert untouched.items == dict.fromkeys(ITEMS, 0.0) and untouched.total == 0 and untouched.score == 0


def test_table_is_aligned_text_in_student_order(graded_course):
    lines = report.format_table(report.load_report(graded_course)).splitlines()
    assert lines[0].split() == ["student", *ITEMS, "total", "penalty", "score", "max"]
    assert [line.split()[0] for line in lines[1:]] == sorted(STUDENTS)
    assert len({len(line) for line in lines}) == 1, "columns are not aligned"
    untouched = next(line for line in lines if line.startswith(UNTOUCHED))
    assert untouched.split()[1:] == ["0"] * (len(ITEMS) + 3) + [f"{MAX_SCORE:g}"]


def test_cli_prints_table_and_writes_csv_and_png(graded_course, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "grading.cli.report", "--course", str(graded_course),
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert report.format_table(report.load_report(graded_course)) in proc.stdout

    with open(out / "grades_by_item.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["student", *ITEMS, "total", "penalty", "score"]
    assert [r["student"] for r in rows] == sorted(STUDENTS)
    untouched = next(r for r in rows if r["student"] == UNTOUCHED)
    assert all(float(untouched[k]) == 0 for k in [*ITEMS, "total", "score"])

    png = out / "grades_overview.png"
    assert png_size(png) == (1200, 500) and png.stat().st_size > 20_000


def test_pass_rate_counts_full_points_only():
    rows = [report.StudentRow("a", {"x": 2.0, "y": 0.5}, 2.5, 0.0, 2.5, 3),
            report.StudentRow("b", {"x": 1.0, "y": 1.0}, 2.0, 0.0, 2.0, 3)]
    rep = report.Report(ASSIGNMENT, ["x", "y"], {"x": 2.0, "y": 1.0}, rows, 3)
    assert report.pass_rates(rep) == {"x": 0.5, "y": 0.5}
