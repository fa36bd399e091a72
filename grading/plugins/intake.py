"""Submission intake: a submission is looked at with ``lstat`` before nbgrader (or anything of ours) opens it.

A submission folder is hostile data, and nbgrader follows whatever is in it with the instructor's rights:
``shutil.copy`` dereferences a link to ``source/`` or ``gradebook.db`` and copies ``/dev/zero`` until the disk is
full, and a ``backprop.ipynb`` that links to the instructor notebook is graded as the student's. So before any of
it is read, :meth:`SubmissionIntake.refusal` walks ``submitted/<student>/<assignment>`` -- the student and
assignment folders themselves first -- with ``lstat`` (``O_NOFOLLOW`` directory descriptors, so nothing can be
swapped in under the walk) and refuses the submission when it holds anything but regular files and directories:
a symbolic link, a device, a FIFO, a socket, a file with a second hard link (an inode shared with something
outside the submission), or more files or bytes than ``max_files``/``max_total_mb``.

Rule: one bad entry refuses the *whole* submission. The student gets 0 on every item and a one-line reason in
the grade report; the class run goes on. An honest upload never contains these (browsers, nbgrader's
``collect`` and LMS archives deliver regular files), so refusing costs honest students nothing, needs no
reimplementation of nbgrader's copy step (which copies every file it finds), never grades a different
submission than the one handed in, and tells the student exactly what to fix before resubmitting.

Where it runs:

* nbgrader's Autograde (``nbgrader autograde``, formgrader's button, ``grading.cli.grade_class``):
  nbgrader 0.9.6 has no step that can refuse a submission before copying it -- ``pre_convert_hook`` runs
  before the copy but nbgrader catches and logs (at INFO) whatever it raises, and the converter class is
  hard-coded in its app and API. :func:`refuse_unsafe_submissions` (called from nbgrader_config.py) therefore
  puts the check in front of ``Autograde.init_destination``, the first per-submission step, inside nbgrader's
  own per-student error handling: a refusal is an ordinary per-student failure. Before that step nbgrader only
  lists directory names (``glob``), it opens no file.
* the Dask payload of class grading (``grading.class_grading``) reads submissions with :meth:`SubmissionIntake.read`;
* ``grading.cli.report`` asks :meth:`SubmissionIntake.refusal` for a refused student's reason, so it opens nothing
  of that submission either.

Assumption: students cannot write into ``submitted/`` while it is graded (nbgrader's ``collect`` copies their
uploads there); the walk is race-free, but nbgrader reads the files again by path afterwards.
"""
import os
import stat

from traitlets import Integer
from traitlets.config import LoggingConfigurable
from traitlets.config.loader import ConfigFileNotFound

from grading.course_config import load_course_config
from grading.student_ids import id_problem, shown

_NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = [(stat.S_ISLNK, "a symbolic link"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket")]
_REFUSED = "submission refused, nothing in it was read: "
_STUDENT = "the student folder"


class UnsafeSubmissionError(Exception):
    """A submission refused at intake; the message is the one-line reason."""


def _shown(rel):
    """A path of the student's as it may appear in a one-line reason: printable, short."""
    text = rel if rel.isprintable() else ascii(rel)
    return text if len(text) <= 80 else text[:77] + "..."


class SubmissionIntake(LoggingConfigurable):
    """Decides, from ``lstat`` alone, whether nbgrader may read a submission."""

    max_files = Integer(200, help="Most files and folders one submission may hold.").tag(config=True)
    max_total_mb = Integer(100, help="Most bytes (in MiB) the files of one submission may add up to.").tag(
        config=True)

    @classmethod
    def for_course(cls, course):
        """An intake configured by the course's nbgrader_config.py (the defaults when it has none)."""
        try:
            return cls(config=load_course_config(course))
        except ConfigFileNotFound:
            return cls()

    def refusal(self, submitted, student, assignment):
        """The one-line reason ``submitted/<student>/<assignment>`` is refused, or None (acceptable, or absent)."""
        try:
            self._walk(submitted, student, assignment, read=False)
        except UnsafeSubmissionError as refused:
            return str(refused)
        return None

    def read(self, submitted, student, assignment):
        """{relative path: bytes} of every file of an acceptable submission; {} for a refused or absent one."""
        try:
            return self._walk(submitted, student, assignment, read=True)
        except UnsafeSubmissionError:
            return {}

    def read_entry(self, parent, name, read=True):
        """({relative path: bytes} (empty unless ``read``), latest ctime) of the folder ``name`` in the directory
        ``parent``, walked like a submission (the collect step reads the exchange's inbound entries with it);
        raises :class:`UnsafeSubmissionError` with the one-line reason. The ctime is the latest the kernel saw
        on the folder or anything in it: its owner can make it later, never earlier."""
        budget = [self.max_files, self.max_total_mb << 20, 0.0]
        try:
            top = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fd = self._enter(top, name, "the submission folder")
                if fd is None:
                    raise UnsafeSubmissionError(f"{_REFUSED}it is gone")
                try:
                    budget[2] = os.fstat(fd).st_ctime
                    files = {}
                    self._walk_dir(fd, "", files if read else None, budget)
                finally:
                    os.close(fd)
            finally:
                os.close(top)
        except OSError as e:
            raise UnsafeSubmissionError(f"{_REFUSED}it could not be listed ({type(e).__name__})") from None
        return files, budget[2]

    def _walk(self, submitted, student, assignment, read):
        try:
            return self._walk_submission(submitted, student, assignment, read)
        except OSError as e:  # e.g. an entry removed under the walk
            raise UnsafeSubmissionError(f"{_REFUSED}it could not be listed ({type(e).__name__})") from None

    def _walk_submission(self, submitted, student, assignment, read):
        files, budget = {}, [self.max_files, self.max_total_mb << 20, 0.0]
        try:  # submitted/ itself is the instructor's (it may be a link); what is below it is the students'
            top = os.open(submitted, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return files
        try:
            for name, label in ((student, _STUDENT), (assignment, "the assignment folder")):
                fd = self._enter(top, name, label)
                if fd is None:
                    return files
                os.close(top)
                top = fd
            self._walk_dir(top, "", files if read else None, budget)
        finally:
            os.close(top)
        return files

    def _enter(self, parent, name, label):
        """Descriptor of the directory ``name`` in ``parent``; None when absent; refused when not a directory."""
        if name in ("", ".", "..") or "/" in name:
            raise UnsafeSubmissionError(f"{_REFUSED}{label} {_shown(name)} is not a folder name")
        if label == _STUDENT and id_problem(name):  # a folder of submitted/ that names no student id
            raise UnsafeSubmissionError(f"{_REFUSED}{id_problem(name)}")
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise UnsafeSubmissionError(f"{_REFUSED}{label} cannot be read ({type(e).__name__})") from None
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeSubmissionError(f"{_REFUSED}{label} is {self._kind(st)}")
        return os.open(name, _NOFOLLOW_DIR, dir_fd=parent)

    @staticmethod
    def _kind(st):
        return next((kind for test, kind in _KINDS if test(st.st_mode)), "a file, not a folder")

    def _walk_dir(self, dir_fd, rel, files, budget):
        for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
            path = f"{rel}{entry.name}"
            st = entry.stat(follow_symlinks=False)
            budget[2] = max(budget[2], st.st_ctime)
            budget[0] -= 1
            if budget[0] < 0:
                raise UnsafeSubmissionError(f"{_REFUSED}more than {self.max_files} files and folders")
            if stat.S_ISDIR(st.st_mode):
                sub = os.open(entry.name, _NOFOLLOW_DIR, dir_fd=dir_fd)
                try:
                    self._walk_dir(sub, path + "/", files, budget)
                finally:
                    os.close(sub)
                continue
            self._check_file(path, st, budget)
            if files is not None:
                files[path] = self._read_file(dir_fd, entry.name, path, budget)

    def _check_file(self, path, st, budget):
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeSubmissionError(f"{_REFUSED}{_shown(path)} is {self._kind(st)}")
        if st.st_nlink > 1:
            raise UnsafeSubmissionError(f"{_REFUSED}{_shown(path)} is a hard link (its file has {st.st_nlink} "
                                        "names)")
        budget[1] -= st.st_size
        if budget[1] < 0:
            raise UnsafeSubmissionError(f"{_REFUSED}its files add up to more than {self.max_total_mb} MiB")

    def _read_file(self, dir_fd, name, path, budget):
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())  # what was opened, not what was listed
            if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
                raise UnsafeSubmissionError(f"{_REFUSED}{_shown(path)} changed while it was read")
            data = f.read(st.st_size)
            budget[2] = max(budget[2], os.fstat(f.fileno()).st_ctime)  # a write during the read counts
            return data


def refuse_unsafe_submissions(autograde_class):
    """Put the intake in front of ``autograde_class.init_destination`` (nbgrader's Autograde), once."""
    original = autograde_class.init_destination
    if getattr(original, "intake", False):
        return

    def init_destination(self, assignment_id, student_id):
        submitted = os.path.normpath(self.coursedir.format_path(self.coursedir.submitted_directory, ".", "."))
        reason = SubmissionIntake(parent=self).refusal(submitted, student_id, assignment_id)
        if reason:
            self.log.error("%s: %s", shown(student_id), reason)
            raise UnsafeSubmissionError(reason)
        return original(self, assignment_id, student_id)

    init_destination.intake = True
    autograde_class.init_destination = init_destination


__all__ = ["SubmissionIntake", "UnsafeSubmissionError", "refuse_unsafe_submissions"]
