"""The few Linux calls Python 3.11 lacks, through ctypes: namespaces, mounts, detached mount trees, capabilities.

Used by the warm-kernel template and its children (fork_server.py, warm_child.py) and, on the host side, by
grading/sandbox/ (:func:`open_tree` for the template's forks, :func:`mount_points` for the disk quota). Every
wrapper raises OSError with the call's name on failure.
"""
from __future__ import annotations

import ctypes
import os
import platform
import re

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG, PR_SET_NAME, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 15, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
AT_FDCWD, AT_RECURSIVE, AT_EMPTY_PATH = -100, 0x8000, 0x1000
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
# open_tree and move_mount have the same numbers on every architecture (the unified table from 424 on).
SYS_OPEN_TREE, SYS_MOVE_MOUNT = 428, 429
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if v is None else os.fsencode(v) for v in (source, target, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {target}")


def open_tree(path: str) -> int:
    """A descriptor of a detached copy of the mount tree at `path` (recursive), attachable in another mount
    namespace with :func:`move_mount` (the caller needs CAP_SYS_ADMIN)."""
    return _check(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, os.fsencode(path),
                                OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE), f"open_tree {path}")


def move_mount(tree_fd: int, target: str) -> None:
    """Attach the detached tree `tree_fd` (from :func:`open_tree`) on `target`."""
    _check(_libc.syscall(SYS_MOVE_MOUNT, tree_fd, b"", AT_FDCWD, os.fsencode(target), MOVE_MOUNT_F_EMPTY_PATH),
           f"move_mount {target}")


def prctl(option: int, arg: int = 0) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl {option}")


def set_process_name(name: str) -> None:
    _libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def last_capability() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def drop_bounding_set() -> None:
    """Empty the capability bounding set (needs CAP_SETPCAP) and the ambient set."""
    for cap in range(last_capability() + 1):
        prctl(PR_CAPBSET_DROP, cap)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def clear_capabilities() -> None:
    """Empty effective, permitted and inheritable capability sets of this thread."""
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def machine_supported() -> bool:
    """open_tree/move_mount exist from Linux 5.2; the numbers above are those of the unified syscall table."""
    release = tuple(int(p) for p in platform.release().split(".")[:2] if p.isdigit())
    return release >= (5, 2) and platform.machine() in ("x86_64", "aarch64")


def mount_points() -> list[str]:
    """Mount points of this mount namespace (/proc/self/mountinfo, octal escapes decoded)."""
    with open("/proc/self/mountinfo", "rb") as f:
        fields = [line.split(b" ")[4] for line in f if line.count(b" ") >= 4]
    return [re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), p).decode(errors="replace")
            for p in fields]
