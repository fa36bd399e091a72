"""The seccomp filter every sandboxed kernel runs under (bwrap's ``--seccomp FD``).

Why: bwrap's namespaces and the dropped UID keep student code away from the host's files, but the kernel still
offers it attack surface that a notebook never needs. Unprivileged user namespaces are enabled on these machines,
so without a filter ``unshare -Urmn`` makes a student root with every capability in a nested namespace, free to
mount; ``bpf``, ``perf_event_open``, ``userfaultfd`` and ``io_uring`` are the usual ways from there to a kernel
exploit. The filter denies those calls with EPERM (a clean ``PermissionError`` in Python, never a crash):

* new namespaces: ``unshare``, ``setns``, and ``clone`` with any ``CLONE_NEW*`` flag (``clone3`` passes its
  flags in memory a filter cannot read, so it fails with ENOSYS and glibc falls back to ``clone``);
* mounts: ``mount``, ``umount2``, ``pivot_root``, ``chroot`` and the new mount API;
* kernel attack surface: ``keyctl``/``add_key``/``request_key``, ``bpf``, ``perf_event_open``, ``userfaultfd``,
  ``io_uring_*``, ``ptrace``, ``process_vm_*``, module and kexec calls.

Calls of a foreign ABI (i386 ``int 0x80``, x32) kill the process: libseccomp's default bad-arch action.
"""
from __future__ import annotations

import os
import tempfile

import pyseccomp as seccomp

# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
# (linux/sched.h); CLONE_NEWTIME (0x80) is only valid for unshare, which is denied whole.
CLONE_NEW_FLAGS_BITS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)

DENIED = (
    "unshare", "setns",
    "mount", "umount2", "pivot_root", "chroot",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "ptrace", "process_vm_readv", "process_vm_writev",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
)


def build_filter() -> seccomp.SyscallFilter:
    """Allow everything but the calls above (EPERM) and clone3 (ENOSYS)."""
    filt = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in DENIED:
        filt.add_rule(seccomp.ERRNO(1), name)      # EPERM
    filt.add_rule(seccomp.ERRNO(38), "clone3")      # ENOSYS: glibc retries with clone, whose flags we can see
    # clone's first argument is the flags word (x86_64 and aarch64 alike); rules for one call are OR-ed, so one
    # rule per flag denies a clone that asks for any new namespace.
    for bit in CLONE_NEW_FLAGS_BITS:
        filt.add_rule(seccomp.ERRNO(1), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, bit, bit))
    return filt


def bpf_fd() -> int:
    """A readable file descriptor positioned at the compiled BPF program, for ``bwrap --seccomp FD``.

    The caller passes it to bwrap (``pass_fds``) and closes it once the sandbox has started.
    """
    with tempfile.TemporaryFile() as out:
        build_filter().export_bpf(out)
        out.seek(0)
        fd = os.dup(out.fileno())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
