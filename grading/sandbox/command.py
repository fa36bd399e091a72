"""The bubblewrap command line that starts a kernel in the sandbox, and its resource limits.

A warm kernel (grading/sandbox/warm_kernels.py) gets the same view, namespaces, privileges, seccomp filter and
limits by setting itself up after the fork from its template (grading/in_sandbox/warm_child.py).

What the kernel sees
--------------------
* **No network at all**: a new network namespace (only a private loopback). Because TCP between the grader and a
  kernel in another network namespace is impossible, the kernel talks to the grader over ZeroMQ ``ipc`` (Unix
  domain) sockets whose files live in a directory that is bound into the sandbox *at the same absolute path*.
* **A minimal, read-only filesystem**: ``/usr`` (and the ``/bin``, ``/lib*`` links or directories), of ``/etc``
  only the few files Python needs (``ld.so.cache``, ``localtime``: no ``passwd``, ``shadow``, ``hostname``, SSH
  keys), the Python installation (``sys.base_prefix``) and the virtual environment (``sys.prefix``), all
  read-only; fresh ``/dev`` and (with the PID namespace) ``/proc``; a private, size-capped tmpfs on ``/tmp`` (also
  ``HOME``) and ``/dev/shm``; and exactly **one writable directory**, the per-notebook scratch directory
  (grading/sandbox/scratch.py) under its disk quota, which is the kernel's working directory. The course
  directory, ``source/``, the gradebook and other students' files are simply not mounted.
* **Its own PID, IPC and UTS namespaces**. ipykernel shuts itself down in a new PID namespace ("Parent appears to
  have exited") only when its parent poller is armed by the ``JPY_PARENT_PID`` environment variable. The kernel
  gets a clean environment (``bwrap --clearenv``), so the poller is never armed and the PID namespace can be
  unshared, which (a) hides and protects every host process (a sandboxed process cannot signal or ptrace what it
  cannot name) and (b) guarantees clean-up: when the sandbox's init dies (``--die-with-parent``), the kernel kills
  every process it forked, even daemonised ones.
* **A seccomp filter** (grading/in_sandbox/seccomp.py, ``bwrap --seccomp FD``): no new namespaces (so no nested
  user namespace, as root too), no mounts, ``ptrace``, ``bpf``, ``keyctl``, ``perf_event_open``, ``userfaultfd``
  or ``io_uring``.
* **No privileges**: all capabilities are dropped and ``no_new_privs`` is set. When the grader runs as root, the
  kernel additionally runs under a fresh, otherwise unused UID/GID (``setpriv``; grading/sandbox/uids.py), so it
  cannot read root-only files in the read-only binds (``/etc/shadow``, SSH host keys), cannot touch processes of
  any other kernel, and cannot modify the socket directory once the kernel is up.
* **A clean environment** (:func:`default_kernel_env`): only ``PATH``, ``HOME``, ``LANG``, ``MPLBACKEND=Agg``, one
  BLAS/OpenMP thread per kernel, a few harmless Python/IPython settings and nbgrader's ``NBGRADER_EXECUTION``; no
  instructor variables leak in.
* **Resource limits** (:func:`rlimit_options`, ``prlimit`` in the wrapped command): address space, CPU seconds,
  maximum file size, number of processes (only with a dedicated UID: ``RLIMIT_NPROC`` counts per UID), open files,
  and no core dumps. Memory is capped per process, not per submission: run autograde inside a memory cgroup for a
  hard total cap.
"""
from __future__ import annotations

import os
import shutil
import sys
import typing as t


class SandboxError(RuntimeError):
    """The sandbox cannot be set up; student code is never run without it."""


def require_executable(name: str, what: str) -> str:
    """Absolute path of executable `name` or a one-line SandboxError."""
    path = shutil.which(name) if os.sep not in name else (name if os.access(name, os.X_OK) else None)
    if not path:
        raise SandboxError(f"{what} ({name!r}) not found: install it (Debian/Ubuntu: apt-get install "
                           f"{'bubblewrap' if 'bwrap' in name else 'util-linux'}); refusing to run student code "
                           f"without the sandbox")
    return path


def default_kernel_env() -> dict[str, str]:
    """The kernel's entire environment by default (bwrap --clearenv first)."""
    return {
        "PATH": f"{os.path.join(sys.prefix, 'bin')}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/.matplotlib",
        "IPYTHONDIR": "/tmp/.ipython",
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
        "VECLIB_MAXIMUM_THREADS": "1",
    }


def rlimits(*, memory_mb: int, file_size_mb: int, open_files: int, cpu_s: int, processes: int,
            own_uid: bool) -> dict[str, int]:
    """The kernel's resource limits, {"as": bytes, ...} (names as ``prlimit`` and ``resource.RLIMIT_*`` spell
    them); 0 means unlimited for `cpu_s` and `processes` (the latter needs an own UID)."""
    mib = 1 << 20
    limits = {"as": memory_mb * mib, "fsize": file_size_mb * mib, "nofile": open_files, "core": 0}
    if cpu_s > 0:
        limits["cpu"] = cpu_s
    if processes > 0 and own_uid:
        limits["nproc"] = processes
    return limits


def rlimit_options(**kwargs: t.Any) -> list[str]:
    """:func:`rlimits` as ``prlimit`` options (``--as=2147483648``)."""
    return [f"--{name}={value}" for name, value in rlimits(**kwargs).items()]


def ancestors(path: str) -> list[str]:
    """'/a/b/c' -> ['/a', '/a/b'] (proper ancestors, outermost first)."""
    parts = os.path.normpath(path).strip(os.sep).split(os.sep)
    return [os.sep + os.sep.join(parts[:i]) for i in range(1, len(parts))]


def covered(path: str, roots: t.Iterable[str]) -> bool:
    """Is `path` one of `roots` or below one of them?"""
    path = os.path.normpath(path)
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _namespaces(unshare_pid: bool, uid: int | None) -> list[str]:
    args = ["--die-with-parent", "--new-session", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "sandbox"]
    if unshare_pid:
        args.append("--unshare-pid")
    if os.geteuid() != 0:
        # Unprivileged bwrap needs a user namespace; no nested ones from inside (as root: the seccomp filter).
        args += ["--unshare-user", "--disable-userns"]
    args += ["--cap-drop", "ALL"]
    if uid is not None:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    return args


def mount_options(scratch_dir: str, ro_binds: t.Sequence[str], ro_bind_exact: t.Sequence[str], tmp_size_mb: int,
                  unshare_pid: bool, work_bind: str = "--bind") -> list[str]:
    """bwrap's mount options: `work_bind` (``--bind``, or ``--ro-bind`` for the warm template's code) binds
    `scratch_dir`, the working directory. Order matters in bwrap: the tmpfs on /tmp comes before binds below
    /tmp, parents are created (0755) before the binds inside them."""
    args: list[str] = []
    made: set[str] = set()     # directories created inside the sandbox
    bound: list[str] = []      # sandbox paths that are mounts (their subtree is visible)

    def mkparents(path: str) -> None:
        for anc in ancestors(path):
            if anc in made or covered(anc, bound):
                continue
            args.extend(["--perms", "0755", "--dir", anc])
            made.add(anc)

    # Private /tmp BEFORE anything bound below it (a later tmpfs would hide the bind): the course, its .venv or
    # the Python installation may well live under /tmp (a CI checkout, a temporary course).
    args += ["--perms", "1777", "--size", str(tmp_size_mb << 20), "--tmpfs", "/tmp"]
    made.add("/tmp")
    # Read-only system and Python trees (system dirs first, then deeper ones).
    for path in sorted(dict.fromkeys(os.path.normpath(p) for p in ro_binds), key=lambda p: (p.count(os.sep), p)):
        if not os.path.lexists(path) or covered(path, bound):
            continue
        if os.path.islink(path) and os.path.dirname(path) == os.sep:
            args += ["--symlink", os.readlink(path), path]
            made.add(path)
            continue
        mkparents(path)
        args += ["--ro-bind", path, path]
        bound.append(path)
    args += ["--dev", "/dev", "--perms", "1777", "--size", str(tmp_size_mb << 20), "--tmpfs", "/dev/shm"]
    if unshare_pid:
        args += ["--proc", "/proc"]
    for path in ro_bind_exact:
        mkparents(path)
        args += ["--ro-bind", path, path]
        bound.append(path)
    mkparents(scratch_dir)
    return args + [work_bind, scratch_dir, scratch_dir, "--chdir", scratch_dir]


def sandbox_command(
    inner: list[str],
    *,
    bwrap: str,
    scratch_dir: str,
    ro_binds: t.Sequence[str],
    ro_bind_exact: t.Sequence[str] = (),
    env: t.Mapping[str, str],
    tmp_size_mb: int = 256,
    unshare_pid: bool = True,
    uid: int | None = None,
    setpriv: str | None = None,
    limits: t.Sequence[str] = (),
    prlimit: str | None = None,
    seccomp_fd: int | None = None,
) -> list[str]:
    """The full ``bwrap ... -- [setpriv ...] [prlimit ...] inner...`` command line.

    ro_binds: host paths bound read-only at the same path (a top-level symlink such as ``/bin -> usr/bin`` is
        recreated as a symlink); ro_bind_exact: further read-only binds, files or directories (the
        connection-file directory, the files of /etc);
    scratch_dir: the one writable bind, also the working directory; uid: run as this UID/GID (needs root);
    limits: ``prlimit`` options such as ``--as=2147483648`` (:func:`rlimit_options`);
    seccomp_fd: a descriptor bwrap reads the compiled seccomp filter from (the caller hands it to the process and
        closes it after the launch).
    """
    args = [bwrap, *_namespaces(unshare_pid, uid),
            *mount_options(scratch_dir, ro_binds, ro_bind_exact, tmp_size_mb, unshare_pid), "--clearenv"]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    for key, value in env.items():
        args += ["--setenv", str(key), str(value)]
    args.append("--")
    if uid is not None:
        if not setpriv:
            raise SandboxError("setpriv is required to drop privileges")
        args += [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                 "--bounding-set=-all", "--no-new-privs", "--"]
    if limits:
        if not prlimit:
            raise SandboxError("prlimit is required for resource limits")
        args += [prlimit, *limits, "--"]
    return args + list(inner)
