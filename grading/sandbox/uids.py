"""Sandbox UIDs, unique among the live kernels of this process.

When the grader runs as root, each kernel runs under its own otherwise unused UID. ``RLIMIT_NPROC`` counts the
processes of a UID, so two live kernels sharing one would share their process limit (and could signal each
other): a random UID is handed out only if no live kernel of this process holds it and no host process runs
under it.
"""
from __future__ import annotations

import os
import secrets
import threading

from grading.sandbox.command import SandboxError

_live: set[int] = set()
_lock = threading.Lock()
_TRIES = 64


def _host_uids() -> set[int]:
    """UIDs that own a process visible in /proc (e.g. a kernel of another grading process)."""
    uids = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                uids.add(os.stat(f"/proc/{name}").st_uid)
            except OSError:
                continue
    return uids


def allocate_uid(base: int, count: int, fixed: int = -1) -> int:
    """A UID for a new kernel: `fixed` if >= 0 (unique within this process only: it is the instructor's choice),
    else a random free one in [base, base + count). SandboxError when none is free. Give it back with
    :func:`release_uid`."""
    if fixed == 0:
        raise SandboxError("the sandbox UID must not be 0")
    with _lock:
        if fixed > 0:
            candidates, busy = [fixed], _live
        else:
            candidates = ([base + i for i in range(count)] if count <= _TRIES
                          else [base + secrets.randbelow(count) for _ in range(_TRIES)])
            busy = _live | _host_uids()
        for uid in candidates:
            if uid > 0 and uid not in busy:
                _live.add(uid)
                return uid
    raise SandboxError(f"sandbox UID {fixed} is already used by another kernel" if fixed > 0
                       else f"no free sandbox UID in [{base}, {base + count})")


def release_uid(uid: int) -> None:
    with _lock:
        _live.discard(uid)
