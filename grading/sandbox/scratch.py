"""The sandbox's one writable directory: a fresh scratch directory holding copies of the notebook's support files,
under a disk quota.

nbgrader's autograde copies the student's files *and* every file of ``source/<assignment>/`` next to the notebook,
so instructor-only files (in ``source/`` but not in ``release/``) would reach student code. The builder leaves them
out, and fails closed: when it cannot tell student files from instructor files (no assignment id, or the
assignment's release folder is missing, as on a worker that was not sent it) it refuses with a one-line
:class:`ScratchError` instead of copying. It never follows a symbolic link: only regular files with a single link
are copied (checked with ``lstat`` and again on the opened file), so a link or device planted in a submission
cannot make the grader copy ``source/``, ``gradebook.db`` or ``/dev/zero`` into the sandbox.

Disk quota: when the grader is root, the scratch directory is a tmpfs of ``disk_quota_mb`` (grading/sandbox/quota.py),
so a cell that writes until it fails leaves nothing on the host disk; the rest of the notebook is still graded (the
RPC channel is a socket, which needs no space). Without root no quota is enforced (logged once).

Configurable as ``c.ScratchBuilder.*`` in nbgrader_config.py.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import tempfile
import typing as t

from traitlets import Bool, Integer, Unicode
from traitlets.config import LoggingConfigurable

from grading.sandbox import quota
from grading.sandbox.command import SandboxError

SKIPPED_NAMES = (".ipynb_checkpoints", "__pycache__")
CHUNK = 1 << 20


class ScratchError(SandboxError):
    """The scratch directory cannot be built safely; nothing was copied."""


def _entries(directory: str) -> t.Iterator[tuple[str, os.stat_result]]:
    """(name, lstat) of a directory's entries, sorted; unreadable ones are left out."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for name in names:
        try:
            yield name, os.lstat(os.path.join(directory, name))
        except OSError:
            continue


def regular_files(root: str) -> set[str]:
    """Relative paths of the regular files below `root`, never following a link."""
    found, todo = set(), [""]
    while todo:
        rel = todo.pop()
        for name, st in _entries(os.path.join(root, rel)):
            path = os.path.join(rel, name)
            if stat.S_ISDIR(st.st_mode):
                todo.append(path)
            elif stat.S_ISREG(st.st_mode):
                found.add(path)
    return found


def _real_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def instructor_only_files(source_dir: str | None, release_dir: str | None) -> set[str]:
    """Files of the assignment's source folder that its release folder lacks (ScratchError if that is missing or
    unknown: None when the assignment is not known)."""
    if source_dir is None or release_dir is None:
        raise ScratchError("no assignment id: cannot tell student files from instructor files, so no support file "
                           "is copied into the sandbox")
    if not _real_dir(release_dir):
        raise ScratchError(f"the release folder {release_dir} is missing: cannot tell student files from instructor "
                           "files, so no support file is copied into the sandbox")
    if not _real_dir(source_dir):
        return set()     # nbgrader copied nothing from a source folder that does not exist
    return {rel for rel in regular_files(source_dir) if not os.path.lexists(os.path.join(release_dir, rel))}


def _copy_regular_file(src: str, dst: str, limit: int) -> int | None:
    """Copy `src` if it is still a regular, singly linked file of at most `limit` bytes; bytes copied or None."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > limit:
            return None
        copied = 0
        with open(dst, "xb") as out:
            while copied < st.st_size:
                chunk = f.read(min(CHUNK, st.st_size - copied))
                if not chunk:
                    break
                out.write(chunk)
                copied += len(chunk)
    os.chmod(dst, 0o644)
    return copied


def _remove_partial(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@dataclasses.dataclass
class Scratch:
    """One notebook's scratch directory inside a private base directory: remove() it when the notebook is done."""

    base: str
    work: str                     # the kernel's working directory: support files and whatever the student writes
    quota_mb: int = 0             # its disk quota (a tmpfs mounted on it), 0 = none enforced

    def full(self) -> bool:
        """Is the quota used up (less than 1 MiB left)? False without a quota."""
        if not self.quota_mb:
            return False
        st = os.statvfs(self.work)
        return st.f_bavail * st.f_frsize < (1 << 20)

    def remove(self) -> None:
        if self.quota_mb:
            quota.unmount(self.work)
            self.quota_mb = 0
        shutil.rmtree(self.base, ignore_errors=True)


_warned_no_quota = False


class ScratchBuilder(LoggingConfigurable):
    """Builds one notebook's scratch directory (see the module docstring)."""

    scratch_root = Unicode("", help="Parent of the per-notebook scratch dirs (default: system temp dir; a tmpfs "
                                    "such as /dev/shm makes RPCs faster).").tag(config=True)
    support_files_max_mb = Integer(512, help="Cap on support files copied into the scratch dir (within its disk "
                                             "quota).").tag(config=True)
    exclude_instructor_files = Bool(True, help="Do not copy files found in source/<assignment>/ but not in "
                                               "release/<assignment>/ (refuse when release/ is missing).").tag(
        config=True)
    disk_quota_mb = Integer(256, help="Disk quota of the scratch directory, support files included: a tmpfs of this "
                                      "size when grading as root (grading/sandbox/quota.py); 0 = none.").tag(
        config=True)
    max_files = Integer(10000, help="Files and directories the scratch directory may hold (tmpfs inodes; only with "
                                    "the disk quota).").tag(config=True)

    def build(self, support_dir: str, paths: t.Mapping[str, str]) -> Scratch:
        """A fresh :class:`Scratch` whose working directory holds the support files of `support_dir` (not its
        notebooks). `paths`: course_root, source_directory, release_directory and assignment_id (nbgrader's
        CourseDirectory)."""
        copy = bool(support_dir) and _real_dir(support_dir)
        skip = set()
        if copy and self.exclude_instructor_files:
            skip = instructor_only_files(*[os.path.join(paths["course_root"], paths[d], paths["assignment_id"])
                                           if paths.get("assignment_id") else None
                                           for d in ("source_directory", "release_directory")])
        root = self.scratch_root or tempfile.gettempdir()
        if self.disk_quota_mb > 0 and quota.can_mount():
            quota.sweep_stale(root)
        base = tempfile.mkdtemp(prefix=quota.base_prefix(), dir=root)
        scratch = Scratch(base, os.path.join(base, "scratch"))
        try:
            os.mkdir(scratch.work, 0o700)
            self._limit(scratch)
            if copy:
                self._copy_tree(support_dir, scratch.work, skip)
        except BaseException:
            scratch.remove()
            raise
        return scratch

    def _limit(self, scratch: Scratch) -> None:
        """The disk quota, when it can be had (root)."""
        global _warned_no_quota
        if self.disk_quota_mb <= 0:
            return
        if not quota.can_mount():
            if not _warned_no_quota:
                self.log.warning("TrustedExecute: not running as root, so the scratch directory has no disk quota "
                                 "(only the per-file limit); see grading/sandbox/quota.py")
                _warned_no_quota = True
            return
        quota.mount_tmpfs(scratch.work, self.disk_quota_mb, self.max_files)
        scratch.quota_mb = self.disk_quota_mb

    def _copy_tree(self, src_root: str, dst_root: str, skip: set[str]) -> None:
        cap_mb = min(self.support_files_max_mb, self.disk_quota_mb or self.support_files_max_mb)
        budget = cap_mb << 20
        todo = [""]
        while todo:
            rel = todo.pop()
            for name, st in _entries(os.path.join(src_root, rel)):
                relpath = os.path.join(rel, name)
                src, dst = os.path.join(src_root, relpath), os.path.join(dst_root, relpath)
                if name in SKIPPED_NAMES or name.endswith(".ipynb") and stat.S_ISREG(st.st_mode):
                    continue
                if stat.S_ISDIR(st.st_mode):
                    os.mkdir(dst, 0o755)
                    todo.append(relpath)
                elif not stat.S_ISREG(st.st_mode):
                    self.log.warning("TrustedExecute: %s is not a regular file; not copied", relpath)
                elif relpath in skip:
                    self.log.info("TrustedExecute: not copying instructor-only file %s", relpath)
                elif st.st_size > budget:
                    self.log.warning("TrustedExecute: support files exceed %d MiB; %s not copied", cap_mb, relpath)
                else:
                    try:
                        copied = _copy_regular_file(src, dst, budget)
                    except OSError as e:        # e.g. the disk quota, with the file system's own overhead
                        self.log.warning("TrustedExecute: %s not copied: %s", relpath, e.strerror)
                        _remove_partial(dst)
                        continue
                    if copied is None:
                        self.log.warning("TrustedExecute: %s changed or is linked elsewhere; not copied", relpath)
                    else:
                        budget -= copied
