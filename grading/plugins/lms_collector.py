"""Submissions from an LMS zip into submitted/: the two plugins of `nbgrader zip_collect` (`make collect-lms`),
configured in nbgrader_config.py.

SafeZipExtractor unpacks the zip the instructor downloaded; LmsCollector tells nbgrader, for each extracted
file, whose submission it is and when it was handed in. Student ids come from the gradebook's roster
(`make roster`), never from the zip.

What the LMSs write (read from their source code):

* Canvas, "Download Submissions": a flat zip of ``<lastfirst>_<user id>_<file id>_<file name>``, with ``LATE_``
  before the user id when Canvas counts the submission late (``lib/content_zipper.rb``). A file uploaded again
  under the same name is renamed by Canvas to ``backprop-1.ipynb``, ``backprop-2.ipynb``, ... The user id is the
  roster's ``lms_user_id``. Canvas writes no submission time, only the late flag: a flagged submission gets the
  due date plus one second as its time (one started day late: the smallest penalty the late policy charges;
  raise it in formgrader when the LMS shows more), an unflagged one the due date itself (on time).
* Moodle, "Download all submissions": ``<Full Name>_<participant id>_assignsubmission_file/<file name>`` (one
  folder per student, the default since Moodle 3.1; ``..._file_<file name>`` without folders). The participant
  id is per assignment and no time is in the zip, so Moodle needs its grading worksheet too ("Download grading
  worksheet", English interface): its "Identifier" (``Participant <id>``) gives the email the roster is matched
  on, and "Last modified (submission)" the time, read in ``LmsCollector.lms_timezone``.
"""
import csv
import re
import shutil
import stat
import zipfile
from datetime import timedelta, timezone
from functools import cached_property
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dateutil.parser
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import ExtractorPlugin, FileNameCollectorPlugin
from nbgrader.utils import parse_utc
from traitlets import Int, Unicode

from grading.plugins.due_date import DueDate
from grading.student_ids import id_problem

CANVAS_FILE = re.compile(r"^(?P<name>.*?)_(?:(?P<late>LATE)_)?(?P<lms_id>\d+)_\d+_(?P<file>.+)$", re.IGNORECASE)
MOODLE_FILE = re.compile(r"(?:^|/)(?P<name>[^/]*)_(?P<participant>\d+)_assignsubmission_file"
                         r"(?:_?/(?:[^/]+/)*|_)(?P<file>[^/]+)$")
RESUBMITTED = re.compile(r"-\d+(?=\.ipynb$)")   # Canvas: backprop-1.ipynb is a re-uploaded backprop.ipynb
WORKSHEET_COLUMNS = ("Identifier", "Email address", "Last modified (submission)")


class SafeZipExtractor(ExtractorPlugin):
    """Unpack each zip of the archive directory into extracted/<zip name>/, refusing, with a one-line warning
    each, what no LMS writes: symlinks, paths that leave the folder, entries over ``max_entry_bytes``. Other
    files are copied (symlinks skipped); zips inside zips stay packed (a notebook is never one)."""

    max_entry_bytes = Int(64 << 20, help="Largest file taken from a zip, in bytes.").tag(config=True)

    def extract(self, archive_path, extracted_path):
        for path in sorted(Path(archive_path).rglob("*")):
            dest = Path(extracted_path) / path.relative_to(archive_path)
            if path.is_symlink():
                self.log.warning("skipped %s: a symlink", path.name)
            elif path.is_file() and zipfile.is_zipfile(path):
                self.unzip(path, dest.with_suffix(""))
            elif path.is_file():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)

    def unzip(self, archive, folder):
        with zipfile.ZipFile(archive) as zf:
            for entry in zf.infolist():
                refused = self.refusal(entry)
                if refused:
                    self.log.warning("%s: refused %s (%s)", archive.name, entry.filename, refused)
                    continue
                if entry.is_dir():
                    continue
                target = folder.joinpath(*PurePosixPath(entry.filename).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(entry) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)

    def refusal(self, entry):
        """Why a zip entry is not extracted, or None."""
        path = PurePosixPath(entry.filename)
        if stat.S_ISLNK(entry.external_attr >> 16):
            return "a symlink"
        if path.is_absolute() or ".." in path.parts or "\\" in entry.filename:
            return "a path outside the archive's folder"
        if entry.file_size > self.max_entry_bytes:
            return f"{entry.file_size} bytes, over the {self.max_entry_bytes} allowed"
        if entry.flag_bits & 0x1:
            return "encrypted"
        return None


class LmsCollector(FileNameCollectorPlugin):
    """Whose submission an extracted Canvas or Moodle file is (the roster's student id), under which notebook
    name, and when it was handed in (nbgrader's timestamp, from which the late penalty follows)."""

    moodle_worksheet = Unicode("", help="Moodle's grading worksheet (CSV) for the zip being collected.").tag(
        config=True)
    lms_timezone = Unicode("UTC", help="Time zone of the worksheet's times (the downloading Moodle user's).").tag(
        config=True)

    def collect(self, submitted_file):
        if Path(submitted_file).suffix not in self.valid_ext:
            return None
        path = Path(submitted_file).as_posix()
        moodle = MOODLE_FILE.search(path)
        if moodle:
            found = self.from_moodle(moodle)
        else:
            canvas = CANVAS_FILE.match(Path(submitted_file).name)
            found = self.from_canvas(canvas) if canvas else "neither a Canvas nor a Moodle file name"
        if isinstance(found, str):
            self.log.warning("skipped %s: %s", Path(submitted_file).name, found)
            return None
        return found

    def from_canvas(self, match):
        student = self.roster_by_lms_id.get(match["lms_id"])
        if student is None:
            return f"Canvas user {match['lms_id']} is in no roster row's lms_user_id (make roster)"
        if match["late"] and self.due_date is None:
            self.parent.fail(f"Canvas marks {match['name']} late but {self.assignment} has no due date")
        late = timedelta(seconds=1) if match["late"] else timedelta(0)
        return dict(student_id=student, file_id=RESUBMITTED.sub("", match["file"]),
                    timestamp=self.due_date + late if self.due_date else None)

    def from_moodle(self, match):
        if not self.moodle_worksheet:
            self.parent.fail("Moodle submissions need Moodle's grading worksheet: make collect-lms ZIP=... "
                             "WORKSHEET=grading_worksheet.csv")
        row = self.worksheet.get(match["participant"])
        if row is None:
            return f"participant {match['participant']} ({match['name']}) is not in the grading worksheet"
        email, submitted = row
        student = self.roster_by_email.get(email.lower())
        if student is None:
            return f"{email} ({match['name']}) is in no roster row's email (make roster)"
        return dict(student_id=student, file_id=match["file"], timestamp=submitted)

    @property
    def assignment(self):
        return self.parent.coursedir.assignment_id

    @cached_property
    def students(self):
        with Gradebook(self.parent.coursedir.db_url, self.parent.coursedir.course_id) as gb:
            students = [(s.id, s.lms_user_id, s.email) for s in gb.students]
        for refused in [s for s in students if id_problem(s[0])]:  # added by hand, not through `make roster`
            self.log.warning("not collected: %s", id_problem(refused[0]))
        return [s for s in students if not id_problem(s[0])]

    @cached_property
    def due_date(self):
        """The assignment's due date (naive UTC, as nbgrader keeps it): nbgrader_config.py's c.DueDate.due_date,
        the one every autograde writes into the gradebook, else the gradebook's; None when neither has one."""
        configured = DueDate(config=self.config).due_date
        if configured is not None:
            return parse_utc(configured).replace(tzinfo=None)
        with Gradebook(self.parent.coursedir.db_url, self.parent.coursedir.course_id) as gb:
            try:
                return gb.find_assignment(self.assignment).duedate
            except MissingEntry:
                return None

    @cached_property
    def roster_by_lms_id(self):
        return unique_keys([(lms_id, sid) for sid, lms_id, _ in self.students if lms_id], "lms_user_id", self.log)

    @cached_property
    def roster_by_email(self):
        return unique_keys([(email.lower(), sid) for sid, _, email in self.students if email], "email", self.log)

    @cached_property
    def worksheet(self):
        """{participant id: (email, submitted at as naive UTC, or None)} from Moodle's grading worksheet."""
        with open(self.moodle_worksheet, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        missing = [c for c in WORKSHEET_COLUMNS if rows and c not in rows[0]]
        if missing or not rows:
            self.parent.fail(f"{self.moodle_worksheet} is not a Moodle grading worksheet in English "
                             f"(no {', '.join(missing) or 'rows'})")
        try:
            zone = ZoneInfo(self.lms_timezone)
            return {re.sub(r"\D", "", row["Identifier"]): (row["Email address"].strip(),
                                                           moodle_time(row["Last modified (submission)"], zone))
                    for row in rows}
        except (ValueError, OverflowError, ZoneInfoNotFoundError) as e:   # dateutil's ParserError is a ValueError
            self.parent.fail(f"{self.moodle_worksheet}: {type(e).__name__}: {e}")


def moodle_time(text, zone):
    """Moodle's "Thursday, 20 November 2026, 11:59 PM" in `zone` as naive UTC; None for "-" (no submission)."""
    if text.strip() in ("", "-"):
        return None
    local = dateutil.parser.parse(text).replace(tzinfo=zone)
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def unique_keys(pairs, what, log):
    """{key: student id} from (key, student id) pairs; a key two students share maps to nobody (ambiguous)."""
    seen = {}
    for key, student in pairs:
        seen.setdefault(key, []).append(student)
    for key, students in seen.items():
        if len(students) > 1:
            log.warning("%s %s is shared by %s: none of them is collected", what, key, ", ".join(students))
    return {key: students[0] for key, students in seen.items() if len(students) == 1}
