"""Hidden inputs per submission: the salt the grader mixes into every seed of the hidden ``gradcheck.grade`` calls.

The hidden tests reach student code, which can record them and print them into its own feedback. With fixed seeds
those inputs would serve every later resubmission. So the grader sets ``gradcheck_engine.SEED_SALT`` on its trusted
copy of the checker (grading/trusted/modules.py) to an HMAC of the submission's content under a course secret: the
assignment's id, the types and sources of its cells (after sanitizing), and every other file of the folder the
sandbox's scratch directory is filled from (nbgrader's autograded/<student>/<assignment>/: the student's files,
timestamp.txt among them, with the assignment's own copied over them). Re-grading the same submission draws the
same inputs and gives the same grades, sequentially or on any worker; a resubmission that changes one byte of a
cell *or of any file that reaches the sandbox* -- say, the same cells plus a file of answers precomputed from
hidden inputs an earlier submission printed -- gets other inputs. Public cases (``self_check``) are never salted.

The files are hashed in a canonical order (sorted relative paths, walked with ``lstat``, never following a link;
a link, device or FIFO counts by its name and kind only, and is never opened). Notebooks (``*.ipynb``) count by the
graded notebook's cells only: the scratch directory never holds one, and nbgrader rewrites them while grading.

The secret is a file of the course root (``c.SeedSalt.secret_file``, default ``seed_secret``), created with
random bytes on first autograde and git-ignored. Keep it with gradebook.db: a course moved without it grades
resubmitted *and* unchanged notebooks with other inputs. It never reaches students: the sandbox holds only the
released support files, and parallel grading ships it to the workers with the gradebook
(grading/class_grading/autograde_one.py).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import typing as t

from traitlets import TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

SECRET_BYTES = 32
CHUNK = 1 << 20
SKIPPED_NAMES = (".ipynb_checkpoints", "__pycache__")      # never copied into the sandbox (grading/sandbox/scratch.py)
MAX_SECRET_FILE = 4096


class SeedSalt(LoggingConfigurable):
    """The course secret and the per-submission salt derived from it."""

    secret_file = Unicode("seed_secret", help="The course secret's file, relative to the course root; created on "
                                              "first autograde. Copy it with gradebook.db when the course "
                                              "moves.").tag(config=True)
    target = Unicode("gradcheck_engine.SEED_SALT", help="<trusted module>.<attribute> the salt is set on in the "
                                                        "grader's trusted copy.").tag(config=True)

    @validate("secret_file")
    def _relative(self, proposal: t.Any) -> str:
        path = os.path.normpath(proposal["value"])
        if os.path.isabs(path) or path.startswith(".."):
            raise TraitError(f"SeedSalt.secret_file must be relative to the course root, not {proposal['value']!r}")
        return path

    def secret(self, course_root: str) -> bytes:
        """The course secret, created (atomically, owner-only) if the course has none yet."""
        path = os.path.join(course_root, self.secret_file)
        if not os.path.lexists(path):
            tmp = f"{path}.{secrets.token_hex(8)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(SECRET_BYTES) + "\n")
            try:
                os.link(tmp, path)          # never replaces a secret another process created meanwhile
                self.log.warning("SeedSalt: created the course secret %s; keep it with gradebook.db", path)
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
        return _read_secret(path)

    def salt(self, nb: t.Any, course_root: str, submission_dir: str | None = None, assignment: str | None = None
             ) -> int:
        """The salt of this submission: HMAC-SHA256(secret, submission digest), as a 128-bit integer.

        `submission_dir` (the folder the sandbox's support files come from) and `assignment` default to what the
        calling preprocessor (this object's parent, e.g. TrustedExecute) holds in its nbgrader resources."""
        resources = getattr(self.parent, "resources", None) or {}
        if submission_dir is None:
            submission_dir = (resources.get("metadata") or {}).get("path") or ""
        if assignment is None:
            assignment = str((resources.get("nbgrader") or {}).get("assignment") or "")
        digest = submission_digest(nb, submission_dir, assignment)
        mac = hmac.new(self.secret(course_root), digest, hashlib.sha256).digest()
        return int.from_bytes(mac[:16], "big")

    def module_settings(self, salt: int) -> dict[str, dict[str, int]]:
        """{trusted module: {attribute: salt}}, for grading.trusted.modules.TrustedModules."""
        module, _, attribute = self.target.rpartition(".")
        return {module: {attribute: salt}}


def submission_digest(nb: t.Any, submission_dir: str = "", assignment: str = "") -> bytes:
    """SHA-256 of the assignment's name, the notebook's cell types and sources in order, and every file of
    `submission_dir` but notebooks (:func:`files_digest`)."""
    cells = [[str(cell.get("cell_type")), str(cell.get("source"))] for cell in nb.cells]
    head = json.dumps([assignment, cells], ensure_ascii=True).encode()
    digest = hashlib.sha256(hashlib.sha256(head).digest())
    if submission_dir:
        digest.update(files_digest(submission_dir))
    return digest.digest()


def files_digest(root: str) -> bytes:
    """SHA-256 over the entries below `root`, in sorted order of their relative paths: each one's path and kind,
    and a regular file's content. Never follows a link, never opens anything but a regular file (``O_NOFOLLOW``,
    checked again on the open file); notebooks and the folders the scratch directory leaves out are skipped."""
    entries, todo = [], [""]
    while todo:
        rel = todo.pop()
        try:
            names = os.listdir(os.path.join(root, rel))
        except OSError:
            continue
        for name in names:
            path = os.path.join(rel, name)
            try:
                st = os.lstat(os.path.join(root, path))
            except OSError:
                continue
            if name in SKIPPED_NAMES or (name.endswith(".ipynb") and stat.S_ISREG(st.st_mode)):
                continue
            if stat.S_ISDIR(st.st_mode):
                todo.append(path)
            entries.append((path, st))
    digest = hashlib.sha256()
    for path, st in sorted(entries, key=lambda entry: entry[0].encode("utf-8", "surrogateescape")):
        kind = "d" if stat.S_ISDIR(st.st_mode) else "f" if stat.S_ISREG(st.st_mode) else f"o{stat.S_IFMT(st.st_mode)}"
        content = _file_hash(os.path.join(root, path)) if kind == "f" else b""
        digest.update(json.dumps([path, kind], ensure_ascii=True).encode() + b"\0" + content)
    return digest.digest()


def _file_hash(path: str) -> bytes:
    """SHA-256 of a regular file's bytes, read in chunks (a file that is not one when opened: a fixed marker)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b"unreadable"
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return b"not a regular file"
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.digest()


def _read_secret(path: str) -> bytes:
    """The secret file's bytes: a regular file (no link), of sane size and not empty."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        data = f.read(MAX_SECRET_FILE + 1) if stat.S_ISREG(st.st_mode) else b""
    if not data.strip() or len(data) > MAX_SECRET_FILE:
        raise ValueError(f"the course secret {path} must be a regular file of 1 to {MAX_SECRET_FILE} bytes")
    return data.strip()
