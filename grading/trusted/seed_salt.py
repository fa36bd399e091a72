"""Hidden inputs per submission: the salt the grader mixes into every seed of the hidden ``gradcheck.grade`` calls.

The hidden tests reach student code, which can record them and print them into its own feedback. With fixed seeds
those inputs would serve every later resubmission. So the grader sets ``gradcheck_engine.SEED_SALT`` on its trusted
copy of the checker (grading/trusted/modules.py) to an HMAC of the submission's content (the types and sources of
its cells, after sanitizing) under a course secret: re-grading the same submission draws the same inputs and gives
the same grades, sequentially or on any worker; a resubmission that changes one byte of a cell gets other inputs.
Public cases (``self_check``) are never salted.

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

    def salt(self, nb: t.Any, course_root: str) -> int:
        """The salt of this submission: HMAC-SHA256(secret, cell digest), as a 128-bit integer."""
        mac = hmac.new(self.secret(course_root), submission_digest(nb), hashlib.sha256).digest()
        return int.from_bytes(mac[:16], "big")

    def module_settings(self, salt: int) -> dict[str, dict[str, int]]:
        """{trusted module: {attribute: salt}}, for grading.trusted.modules.TrustedModules."""
        module, _, attribute = self.target.rpartition(".")
        return {module: {attribute: salt}}


def submission_digest(nb: t.Any) -> bytes:
    """SHA-256 of the notebook's cell types and sources, in order."""
    cells = [[str(cell.get("cell_type")), str(cell.get("source"))] for cell in nb.cells]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=True).encode()).digest()


def _read_secret(path: str) -> bytes:
    """The secret file's bytes: a regular file (no link), of sane size and not empty."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        data = f.read(MAX_SECRET_FILE + 1) if stat.S_ISREG(st.st_mode) else b""
    if not data.strip() or len(data) > MAX_SECRET_FILE:
        raise ValueError(f"the course secret {path} must be a regular file of 1 to {MAX_SECRET_FILE} bytes")
    return data.strip()
