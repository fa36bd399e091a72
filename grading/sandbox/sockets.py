"""Socket hygiene: where the kernel's sockets and connection file live, and who may touch them.

The kernel must be able to create its socket files, so the socket directory sits inside the writable scratch
directory. When the grader is root, the scratch directory is root-owned and sticky (mode 1777) and the socket
directory is root-owned; as soon as the five socket files exist (and are verified to be sockets, not symlinks) the
grader makes the socket directory read-only to the kernel's UID, so student code can neither delete nor replace a
socket with a symlink that would make the grader connect to some other Unix socket on the host. The connection file
(with the HMAC key, which the kernel knows anyway) lives in a separate grader-private directory bound read-only.
"""
from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile

from grading.sandbox.command import SandboxError


def prepare_scratch(scratch: str, uid: int | None) -> None:
    """Check the scratch directory; when the kernel gets its own UID, make it root-owned and sticky (the kernel may
    create files, but not rename or delete ours) and hand the files already there (support files) to that UID,
    like a student's own files."""
    if not scratch or not os.path.isabs(scratch) or not os.path.isdir(scratch):
        raise SandboxError(f"scratch_dir must be an existing absolute directory, got {scratch!r}")
    if uid is None:
        return
    os.chown(scratch, 0, 0)
    os.chmod(scratch, 0o1777)
    for dirpath, dirnames, filenames in os.walk(scratch):
        for name in dirnames + filenames:
            if name.startswith(".ipc-"):
                continue
            try:
                os.lchown(os.path.join(dirpath, name), uid, uid)
            except OSError:
                pass


class RuntimeDirs:
    """A fresh grader-private connection-file directory and a fresh socket directory (inside scratch) for each
    start of one kernel manager's kernel."""

    def __init__(self, runtime_root: str):
        self.runtime_root = runtime_root
        self.parent: str | None = None
        self.conn_dir: str | None = None
        self.sock_dir: str | None = None

    def make(self, scratch: str, uid: int | None) -> tuple[str, str]:
        """(connection file path, ipc path prefix of the sockets) for the next start."""
        self.remove()
        if self.parent is None:
            self.parent = tempfile.mkdtemp(prefix="sandbox-run-", dir=self.runtime_root or None)
        token = secrets.token_hex(6)
        self.conn_dir = os.path.join(self.parent, f"conn-{token}")
        os.mkdir(self.conn_dir, 0o755)
        os.chmod(self.conn_dir, 0o755)
        self.sock_dir = os.path.join(scratch, f".ipc-{token}")
        os.mkdir(self.sock_dir, 0o700)
        if uid is not None:
            os.chmod(self.sock_dir, 0o777)    # locked down to 0755 once the sockets exist
        return os.path.join(self.conn_dir, f"kernel-{token}.json"), os.path.join(self.sock_dir, "k")

    def sockets_ready(self, paths: list[str]) -> bool:
        """Do all socket files exist? SandboxError if one is anything but a socket (e.g. a planted symlink)."""
        for path in paths:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                return False
            if not stat.S_ISSOCK(st.st_mode):
                raise SandboxError(f"kernel socket {path} is not a socket; refusing to connect")
        return True

    def lock(self, uid: int | None) -> None:
        """From now on the kernel cannot replace its socket files."""
        if uid is not None and self.sock_dir:
            os.chmod(self.sock_dir, 0o755)

    def remove(self) -> None:
        for path in (self.conn_dir, self.sock_dir):
            if path:
                shutil.rmtree(path, ignore_errors=True)
        self.conn_dir = self.sock_dir = None

    def close(self) -> None:
        self.remove()
        if self.parent:
            shutil.rmtree(self.parent, ignore_errors=True)
            self.parent = None
