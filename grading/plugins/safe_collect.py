"""nbgrader's collect, trusting nothing in the exchange (``c.ExchangeFactory.collect``; `nbgrader collect` and
formgrader's Collect button both go through it).

The exchange's inbound folder is world-writable and so is each submission in it (nbgrader's submit makes the entry
0777 so that the instructor can delete it), so after `nbgrader submit` a student can still change their entry:
swap a file for a symbolic link to ``source/``, ``seed_secret`` or ``gradebook.db``, add a link to
``/dev/zero``, or rewrite ``timestamp.txt``. Stock collect copies with ``shutil.copytree`` as the instructor,
following every link, and takes the submission time from the entry's name and ``timestamp.txt``, both the
student's to write.

Here each inbound entry is walked with ``lstat`` by the submission intake (grading/plugins/intake.py:
``O_NOFOLLOW`` descriptors, regular files and folders only, no hard links, ``SubmissionIntake.max_files`` and
``max_total_mb``). An entry holding anything else -- or whose student id does not match the documented pattern
(grading/student_ids.py) -- is not collected, with one ERROR line naming the student; nothing of it is followed
or opened. What is copied is the bytes read through those descriptors.

The submission time is the latest ``ctime`` of the entry and everything in it, as the exchange host's kernel
recorded it: a student can make it later (by changing anything), never earlier. That time picks each student's
latest entry, is written to ``submitted/<student>/<assignment>/timestamp.txt`` (what autograde and the late
penalty read), and a student's ``timestamp.txt`` that disagrees with it by more than ``timestamp_tolerance``
seconds is reported in one WARNING line. (Copying or restoring the exchange resets ctimes: collect before that.)
"""
import datetime
import fnmatch
import os

from nbgrader.exchange.default import ExchangeCollect
from nbgrader.utils import parse_utc
from traitlets import Float

from grading.plugins.intake import SubmissionIntake, UnsafeSubmissionError
from grading.student_ids import id_problem, shown

_PREFIX = "submission refused, nothing in it was read: "


def _utc_text(seconds):
    """nbgrader's timestamp text for a POSIX time."""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


class SafeCollect(ExchangeCollect):
    """Collect regular files only, at the time the exchange host saw them."""

    timestamp_tolerance = Float(
        120.0, help="Seconds a student's timestamp.txt may differ from the exchange's time before it is reported."
    ).tag(config=True)

    def _path_to_record(self, path):
        filename = os.path.basename(path)
        parts = filename.rsplit("+", 3)
        # A refused entry sorts last, so it is the one reported rather than passed over for an older one.
        record = {"username": parts[0], "filename": filename, "refusal": None, "timestamp": datetime.datetime.max}
        if len(parts) < 3 or id_problem(parts[0]):
            record["refusal"] = id_problem(parts[0]) or f"inbound entry {shown(filename)} is not nbgrader's"
            return record
        try:
            _, seen = SubmissionIntake(parent=self).read_entry(self.inbound_path, filename, read=False)
        except UnsafeSubmissionError as refused:
            record["refusal"] = str(refused).replace(_PREFIX, "")
            return record
        record["timestamp"] = parse_utc(_utc_text(seen))
        record["seen"] = seen
        return record

    def init_src(self):
        super().init_src()
        self._records = {os.path.join(self.inbound_path, r["filename"]): r for r in self.src_records}

    def copy_files(self):
        kept = []
        for record in self.src_records:
            if record["refusal"]:
                self.log.error("%s: not collected: %s", shown(record["username"]), record["refusal"])
            else:
                kept.append(record)
        self.src_records = kept
        super().copy_files()

    def do_copy(self, src, dest, log=None):
        record = self._records[src]
        student = shown(record["username"])
        try:
            files, seen = SubmissionIntake(parent=self).read_entry(self.inbound_path, record["filename"])
        except UnsafeSubmissionError as refused:  # changed since it was listed
            self.log.error("%s: not collected: %s", student, str(refused).replace(_PREFIX, ""))
            return
        seen = max(seen, record["seen"])
        self._check_claim(student, files.get("timestamp.txt"), seen)
        files["timestamp.txt"] = _utc_text(seen).encode()
        os.makedirs(dest)
        for rel, data in files.items():
            if self._ignored(rel):
                continue
            path = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            mode = 0o664 if self.coursedir.groupshared else 0o644   # as nbgrader's copy leaves them
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)

    def _ignored(self, rel):
        """nbgrader's CourseDirectory.ignore patterns (checkpoints, caches), applied to each path component."""
        return any(fnmatch.fnmatch(part, pattern) for part in rel.split("/") for pattern in self.coursedir.ignore)

    def _check_claim(self, student, claimed, seen):
        """One WARNING line when the student's timestamp.txt disagrees with the time the exchange saw."""
        try:
            claim = parse_utc(claimed.decode("utf-8").strip()) if claimed else None
        except (ValueError, OverflowError, UnicodeDecodeError):
            claim = None
        truth = parse_utc(_utc_text(seen))
        if claim is None or abs((truth - claim).total_seconds()) > self.timestamp_tolerance:
            self.log.warning("%s: timestamp.txt says %s but the exchange received the submission at %s UTC; "
                             "collected with the exchange's time", student,
                             shown(claim if claim else (claimed or b"nothing").decode("utf-8", "replace"), 40),
                             truth)
