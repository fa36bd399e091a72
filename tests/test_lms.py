"""A real class through an LMS: `make roster`, `make collect-lms` on Canvas and Moodle zips named the way those
LMSs name their files (built here), the real `nbgrader zip_collect` and `nbgrader autograde`, and `make export`'s
per-item and Canvas CSVs, on a temporary course.

Canvas (lib/content_zipper.rb): ``<lastfirst>_[LATE_]<user id>_<file id>_<file name>``, a re-upload renamed
``backprop-1.ipynb``; no time, only the late flag. Moodle (mod/assign/classes/downloader.php):
``<Full Name>_<participant id>_assignsubmission_file/<file name>``, with the times in its grading worksheet.
"""
import csv
import io
import shutil
import stat
import subprocess
import zipfile
from datetime import datetime
from zoneinfo import ZoneInfo

import nbformat
import pytest
from nbgrader.api import Gradebook

from conftest import ASSIGNMENT, BIN, NOTEBOOK, REPO, make_course, nbgrader
from graded_course import FULL, expected, grade_table
from grading.reporting import grades as report
from grading.courses import sample_class
from grading.course import COURSE_ID
from grading.notebook_items import graded_items
from grading.plugins.lms_export import NBGRADER_COLUMNS

DUE = sample_class.DUE_DATE   # 2026-11-20 23:59:59 UTC
BERLIN = ZoneInfo("Europe/Berlin")
COLUMN = {item.answer_id: report.short_name(item.test_id) for item in graded_items()}   # answer cell -> column
BUGS = sample_class.bug_catalog()
ROSTER = """id,first_name,last_name,email,lms_user_id
ada,Ada,Lovelace,ada@uni.example,1001
finn,Finn,Late,finn@uni.example,1002
dev,Dev,Resubmit,dev@uni.example,1003
eve,Eve,Symlink,eve@uni.example,1004
cleo,Cleo,Moodle,cleo@uni.example,
gus,Gus,Moodle,GUS@uni.example,
hana,Hana,Moodle,hana@uni.example,
ivy,Ivy,Absent,ivy@uni.example,1005
"""
WORKSHEET_HEADER = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                    "Grade can be changed", "Last modified (submission)", "Last modified (grade)",
                    "Feedback comments"]


def notebook(course, **answers):
    """The release's notebook with answer cells replaced: "solution" or a bug catalog name; bytes."""
    solutions = sample_class.solution_sources(course / "source" / ASSIGNMENT / NOTEBOOK)
    sources = {cell: solutions[cell] if what == "solution" else BUGS[what].source for cell, what in answers.items()}
    nb = sample_class.student_notebook(course / "release" / ASSIGNMENT / NOTEBOOK, sources)
    return nbformat.writes(nb).encode()


def solved(course, **changes):
    return notebook(course, **{**dict.fromkeys(COLUMN, "solution"), **changes})


def moodle_time(when):
    """How Moodle's worksheet writes a time: "Sunday, 22 November 2026, 8:00 AM" (English, no zero padding)."""
    return when.strftime("%A, %-d %B %Y, %-I:%M %p")


def write_zip(path, entries, symlinks=()):
    """A zip as an LMS writes it: {name: bytes}; `symlinks`: {name: target} stored as symlink entries."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in dict(symlinks).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def make(course, *args):
    """`make ARGS` in the course, with the repository's Makefile (and venv), as an instructor runs it."""
    proc = subprocess.run(["make", "--no-print-directory", *args], cwd=course, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"make {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def lms_course(root):
    """A course with the release generated, the due date set, the Makefile and .venv of the repository, and
    Moodle's times read in Berlin."""
    course = make_course(root)
    with open(course / "nbgrader_config.py", "a") as config:
        config.write('\nc.LmsCollector.lms_timezone = "Europe/Berlin"\n')
    shutil.copy(REPO / "Makefile", course)
    (course / ".venv").symlink_to(BIN.parent)
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        gb.update_or_create_assignment(ASSIGNMENT, duedate=DUE.replace(tzinfo=None))
    (course / "roster.csv").write_text(ROSTER)
    return course


def canvas_zip(course):
    nb = notebook(course)  # the untouched release, for the refused entries
    return write_zip(course.parent / "ex09-backprop-In-class exercise 9 submissions.zip", {
        "lovelaceada_1001_77001_backprop.ipynb": solved(course),
        "latefinn_LATE_1002_77002_backprop.ipynb": solved(course),
        "resubmitdev_1003_77003_backprop-1.ipynb": solved(course, multiply_backward="multiply_outputs_swapped"),
        "resubmitdev_1003_77003_nn.py": b"print('students may upload more files')\n",
        "strangerzed_9999_77009_backprop.ipynb": nb,
    }, symlinks={"symlinkeve_1004_77004_backprop.ipynb": "/etc/passwd"})


def moodle_zip(course):
    folder = "{}_{}_assignsubmission_file/backprop.ipynb"
    return write_zip(course.parent / "EX09-In-class exercise 9-4711.zip", {
        folder.format("Cleo Moodle", 2001): notebook(course, **dict.fromkeys(list(COLUMN)[:3], "solution")),
        folder.format("Gus Moodle", 2002): solved(course),
        folder.format("Hana Moodle", 2003): solved(course, sum_backward="sum_returns_scalar"),
    })


def moodle_worksheet(course):
    rows = [("Participant 2001", "Cleo Moodle", "cleo@uni.example", datetime(2026, 11, 19, 10, 0, tzinfo=BERLIN)),
            ("Participant 2002", "Gus Moodle", "gus@uni.example", datetime(2026, 11, 22, 8, 0, tzinfo=BERLIN)),
            ("Participant 2003", "Hana Moodle", "hana@uni.example", datetime(2026, 11, 21, 0, 30, tzinfo=BERLIN))]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(WORKSHEET_HEADER)
    for ident, name, email, when in rows:
        writer.writerow([ident, name, email, "Submitted for grading", "", "10.00", "Yes", moodle_time(when), "-", ""])
    path = course.parent / "Grades-EX09-In-class exercise 9-4711.csv"
    path.write_text("\ufeff" + out.getvalue())   # Moodle's CSV starts with a byte-order mark
    return path


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    """The LMS course after `make roster` and both zips through `make collect-lms`: (course, logs)."""
    course = lms_course(tmp_path_factory.mktemp("lms") / "course")
    logs = {"roster": make(course, "roster", "CSV=roster.csv"),
            "canvas": make(course, "collect-lms", f"ZIP={canvas_zip(course)}"),
            "moodle": make(course, "collect-lms", f"ZIP={moodle_zip(course)}", f"WORKSHEET={moodle_worksheet(course)}")}
    return course, logs


def timestamps(course):
    return {p.parent.parent.name: p.read_text() for p in (course / "submitted").glob(f"*/{ASSIGNMENT}/timestamp.txt")}


def test_roster_names_every_student_in_the_gradebook(collected):
    course, logs = collected
    assert "8 students imported into the gradebook, 0 rows skipped" in logs["roster"]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        students = {s.id: (s.first_name, s.last_name, s.email, s.lms_user_id) for s in gb.students}
    assert students["ada"] == ("Ada", "Lovelace", "ada@uni.example", "1001")
    assert students["cleo"] == ("Cleo", "Moodle", "cleo@uni.example", None)
    assert len(students) == 8 and all(first and last for first, last, _, _ in students.values())


def test_lms_times_become_nbgrader_timestamps(collected):
    course, _ = collected
    assert timestamps(course) == {
        "ada": "2026-11-20 23:59:59",    # Canvas, not late: the due date
        "finn": "2026-11-21 00:00:00",   # Canvas's late flag: one second after it
        "dev": "2026-11-20 23:59:59",
        "cleo": "2026-11-19 09:00:00",   # Moodle, 10:00 in Berlin
        "gus": "2026-11-22 07:00:00",    # 08:00 in Berlin: 31 h late
        "hana": "2026-11-20 23:30:00",   # 00:30 on the 21st in Berlin: still on time
    }


def test_collected_files_land_under_the_notebook_name(collected):
    course, logs = collected
    for student in ("ada", "finn", "dev", "cleo", "gus", "hana"):
        assert sorted(p.name for p in (course / "submitted" / student / ASSIGNMENT).iterdir()) == [
            NOTEBOOK, "timestamp.txt"], student   # dev's backprop-1.ipynb is backprop.ipynb, nn.py is not taken
    assert not (course / "submitted" / "eve").exists() and not (course / "submitted" / "9999").exists()
    assert "refused symlinkeve_1004_77004_backprop.ipynb (a symlink)" in logs["canvas"]
    assert "Canvas user 9999 is in no roster row's lms_user_id" in logs["canvas"]


def test_a_moodle_zip_without_its_worksheet_is_refused_with_one_line(collected, tmp_path):
    course = shutil.copytree(collected[0], tmp_path / "course", symlinks=True)
    before = timestamps(course)
    proc = subprocess.run(["make", "collect-lms", f"ZIP={moodle_zip(course)}"], cwd=course, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "Moodle submissions need Moodle's grading worksheet" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert timestamps(course) == before   # nothing collected, nothing lost


def test_unsafe_zip_entries_are_refused_and_the_rest_is_extracted(tmp_path):
    from grading.plugins.lms_collector import SafeZipExtractor
    archive, extracted = tmp_path / "archive", tmp_path / "extracted"
    archive.mkdir()
    write_zip(archive / "subs.zip", {"../escape.ipynb": b"{}", "/abs.ipynb": b"{}", "a_1_2_backprop.ipynb": b"{}"},
              symlinks={"b_3_4_backprop.ipynb": "/etc/passwd"})
    (archive / "linked.zip").symlink_to(archive / "subs.zip")
    SafeZipExtractor().extract(str(archive), str(extracted))
    assert sorted(p.relative_to(extracted).as_posix() for p in extracted.rglob("*") if p.is_file()) == [
        "subs/a_1_2_backprop.ipynb"]
    assert not (tmp_path / "escape.ipynb").exists()


@pytest.fixture(scope="module")
def graded(collected):
    """The collected class after the real `nbgrader autograde` and `make export`."""
    course, _ = collected
    nbgrader(course, "autograde", ASSIGNMENT, "--force")
    make(course, "-o", "venv", "-o", "autograde", "export")   # export's recipe as is, not its prerequisites
    return course


@pytest.mark.slow
def test_grades_and_late_penalties_follow_the_lms_times(graded):
    multiply_swapped = BUGS["multiply_outputs_swapped"].expected_points
    assert grade_table(graded) == {
        "ada": expected(FULL),
        "finn": expected(FULL, late_share=0.1),                                   # one started day
        "dev": expected({**FULL, "multiply": multiply_swapped}),                  # the resubmission is graded
        "cleo": expected({COLUMN[cell]: FULL[COLUMN[cell]] for cell in list(COLUMN)[:3]}),
        "gus": expected(FULL, late_share=0.2),                                    # two started days
        "hana": expected({**FULL, "sum": BUGS["sum_returns_scalar"].expected_points}),
    }


@pytest.mark.slow
def test_export_writes_per_item_columns_and_the_canvas_import_file(graded):
    table = grade_table(graded)
    with open(graded / "reports" / "grades_with_items.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == NBGRADER_COLUMNS + list(FULL)
    assert [r["student_id"] for r in rows] == ["ada", "cleo", "dev", "eve", "finn", "gus", "hana", "ivy"]
    for row in rows:
        items, total, penalty = table.get(row["student_id"], ([0.0] * len(FULL), 0.0, 0.0))
        assert [float(row[c]) for c in FULL] == items, row["student_id"]
        assert (float(row["raw_score"]), float(row["late_submission_penalty"]), float(row["score"]),
                float(row["max_score"])) == (total, penalty, total - penalty, sum(FULL.values())), row["student_id"]
    title = "In-class exercise 9"   # nbgrader_config.py: c.CanvasCsvExport.title, no Canvas id set there
    score = {s: f"{total - penalty:g}" for s, (_, total, penalty) in table.items()}
    assert (graded / "reports" / "canvas_grades.csv").read_text().splitlines() == [
        f"Student,ID,SIS User ID,SIS Login ID,Section,{title}",
        f"Points Possible,,,,,{sum(FULL.values()):g}",
        f'"Lovelace, Ada",1001,,,,{score["ada"]}',
        f'"Moodle, Cleo",,,,,{score["cleo"]}',
        f'"Resubmit, Dev",1003,,,,{score["dev"]}',
        '"Symlink, Eve",1004,,,,',     # nothing collected: the grade in Canvas is left as it is
        f'"Late, Finn",1002,,,,{score["finn"]}',
        f'"Moodle, Gus",,,,,{score["gus"]}',
        f'"Moodle, Hana",,,,,{score["hana"]}',
        '"Absent, Ivy",1005,,,,',
    ]


@pytest.mark.slow
def test_the_canvas_column_names_the_canvas_assignment(graded):
    nbgrader(graded, "export", "--exporter=grading.plugins.lms_export.CanvasCsvExport", "--to", "canvas.csv",
             "--CanvasCsvExport.canvas_assignment_id=4711")
    assert (graded / "canvas.csv").read_text().splitlines()[0].endswith(",In-class exercise 9 (4711)")
    nbgrader(graded, "export", "--to", "stock.csv")   # nbgrader's own export is untouched
    assert (graded / "stock.csv").read_text().splitlines()[0] == ",".join(NBGRADER_COLUMNS)


def test_the_collector_takes_the_configured_due_date_before_the_gradebook_has_one():
    """A first `make collect-lms` on a new course: the gradebook has no due date yet (autograde writes
    c.DueDate.due_date there), so the collector reads nbgrader_config.py's, as autograde will."""
    from traitlets.config import Config

    from grading.plugins.lms_collector import LmsCollector
    collector = LmsCollector(config=Config({"DueDate": {"due_date": "2026-12-04 23:59:59 Europe/Berlin"}}))
    assert str(collector.due_date) == "2026-12-04 22:59:59"   # naive UTC, as nbgrader keeps it
