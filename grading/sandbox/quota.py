"""The disk quota of the sandbox's scratch directory: a size-capped tmpfs mounted on it.

Why: ``RLIMIT_FSIZE`` caps one file, not a directory; a student cell writing many files put 1.2 GB on the host disk.
When the grader is root (CI, a grading server), grading/sandbox/scratch.py mounts a tmpfs with a size and an inode
cap on the scratch directory before anything is copied into it: a write beyond the cap fails with ``ENOSPC``
inside the sandbox, nothing reaches the host disk, and the memory the files held is freed when the directory is
unmounted after the notebook. Mounting needs ``CAP_SYS_ADMIN``, so without root no quota is enforced: the
per-file limit is then the only cap, and scratch.py says so once in the log (grade as root, or put
``c.ScratchBuilder.scratch_root`` on a small file system of its own).

A mount outlives a grader killed with SIGKILL (a class run's task timeout, a killed ``make``). The directories
holding the mounts are named after the grader's PID (:func:`base_prefix`), and :func:`sweep_stale` unmounts and
removes those whose grader is gone.
"""
from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil

from grading.in_sandbox.linux import mount_points

MS_NOSUID, MS_NODEV = 0x2, 0x4          # linux/mount.h
MNT_DETACH = 0x2
_libc = ctypes.CDLL(None, use_errno=True)


def can_mount() -> bool:
    return os.geteuid() == 0


def mount_tmpfs(path: str, size_mb: int, max_files: int) -> None:
    """A fresh tmpfs of `size_mb` MiB and `max_files` inodes on `path` (root only); OSError if refused."""
    options = f"size={int(size_mb)}m,nr_inodes={int(max_files)},mode=0700".encode()
    if _libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", MS_NOSUID | MS_NODEV, options) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot mount a {size_mb} MiB tmpfs on {path}: {os.strerror(err)}")


def unmount(path: str) -> None:
    """Detach the mount on `path` (lazily: files still open elsewhere do not block it); no-op if none."""
    if _libc.umount2(os.fsencode(path), MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        err = ctypes.get_errno()
        raise OSError(err, f"cannot unmount {path}: {os.strerror(err)}")


def base_prefix() -> str:
    """Name prefix of this grader's scratch base directories."""
    return f"grading-{os.getpid()}-"


def sweep_stale(root: str) -> None:
    """Unmount and remove the scratch base directories under `root` left by graders that no longer run."""
    pattern = re.compile(re.escape(os.path.join(os.path.abspath(root), "grading-")) + r"(\d+)-[^/]+")
    bases = {}
    for point in mount_points():
        match = pattern.match(point)
        if match and int(match.group(1)) != os.getpid() and not os.path.exists(f"/proc/{match.group(1)}"):
            bases.setdefault(match.group(0), []).append(point)
    for base, points in bases.items():
        try:
            for point in sorted(points, key=len, reverse=True):
                unmount(point)
        except OSError:
            continue
        shutil.rmtree(base, ignore_errors=True)
