"""One submission's kernel, forked from the warm template (fork_server.py) and isolated exactly like
a cold sandboxed kernel (grading/sandbox/command.py) before any student code runs.

Three processes, all trusted code until the last step of the third:

1. **sandbox** (the template's child, its PID is what the grader sees): a new session, killed with the template
   (``PR_SET_PDEATHSIG``), every template descriptor closed; new mount, PID, IPC, UTS, network and cgroup
   namespaces; ``/`` private; fresh tmpfs on ``/tmp``, ``/dev/shm`` and the other covered directories (so nothing
   of the template's or an earlier child's files shows), read-only mounts below them kept; its own ``devpts``;
   the submission's scratch directory and its connection-file directory (read-only) attached at their host paths
   from detached mount trees the grader sent (``open_tree``/``move_mount``: its disk-quota tmpfs comes with it;
   other students' directories are never in this namespace). It waits for 2 and exits with its status (128 +
   signal when killed, like bwrap).
2. **init**: PID 1 of the new PID namespace; mounts a fresh ``/proc`` (the template is invisible), forks 3, reaps
   orphans and exits with 3's status, which ends every process of the namespace, daemonised ones too.
3. **kernel**: the clean environment; no supplementary groups; the submission's own UID/GID (all capabilities
   gone, the bounding and ambient sets emptied first, inheritable cleared); ``no_new_privs``; the resource limits;
   killed with init; finally the seccomp filter of seccomp.py (it refuses unshare and mount, so it
   comes after all of the above). Then fresh state: ``random``, numpy's global generator and multiprocessing's
   authkey from ``os.urandom``; a preloaded support module (the released ``nn``) dropped unless the scratch
   directory holds the same file; the template's own modules dropped; and IPKernelApp starts on the connection
   file.

Nothing of an earlier student can be inherited: the template never runs student code, so each fork starts from the
same untouched state. Known difference to a cold kernel: children share the template's address-space layout and
``str`` hash seed (ASLR and hash randomization are per template, not per kernel).
"""
from __future__ import annotations

import os
import random
import resource
import signal
import socket
import sys
import typing as t

from . import linux

COVER_OPTIONS = "mode=1777,size={size}m"
PTS_OPTIONS = "newinstance,ptmxmode=0666,mode=620"     # as bwrap's --dev mounts it


def _exit_code(status: int) -> int:
    """A waitpid status as a process exit code (bwrap's convention: 128 + signal when killed)."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _close_inherited(keep: t.Iterable[int]) -> None:
    last = 3
    for fd in sorted(set(keep)):
        os.closerange(last, fd)
        last = fd + 1
    os.closerange(last, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _makedirs(path: str) -> None:
    """Create `path` and missing parents 0755 (root-owned) in a tmpfs of this namespace."""
    if not os.path.isdir(path):
        _makedirs(os.path.dirname(path))
        os.mkdir(path)
        os.chmod(path, 0o755)


def _cover(path: str, size_mb: int, keep: list[str]) -> None:
    """A fresh tmpfs on `path`; the read-only mounts of `keep` below it (e.g. a venv under /tmp) are detached first
    and re-attached."""
    points = set(linux.mount_points())
    inner = [p for p in keep if p.startswith(path.rstrip("/") + "/") and p in points]
    outermost = [p for p in inner if not any(p != q and p.startswith(q + "/") for q in inner)]
    kept = [(linux.open_tree(p), p) for p in sorted(set(outermost))]
    linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, COVER_OPTIONS.format(size=size_mb))
    for fd, point in kept:
        _makedirs(point)
        linux.move_mount(fd, point)
        os.close(fd)


def _attach(tree_fd: int, path: str, read_only: bool) -> None:
    _makedirs(path)
    linux.move_mount(tree_fd, path)
    os.close(tree_fd)
    if read_only:
        linux.mount(None, path, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID
                    | linux.MS_NODEV)


def run_sandbox(request: dict, scratch_fd: int, conn_fd: int, output_fd: int, preloaded: dict[str, bytes]) -> None:
    """Process 1 (see the module docstring); never returns."""
    code = 127
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)       # the template's reaper
        os.setsid()
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        linux.set_process_name("warm-sandbox")
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        _close_inherited([scratch_fd, conn_fd])
        os.umask(0o022)
        linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWPID | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS
                      | linux.CLONE_NEWNET | linux.CLONE_NEWCGROUP)
        socket.sethostname("sandbox")
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        for path in request["covers"]:
            _cover(path, request["tmp_size_mb"], request["keep"])
        # Its own pseudo-terminals (bwrap's --dev gives the template one devpts instance, else shared by children).
        linux.mount("devpts", "/dev/pts", "devpts", linux.MS_NOSUID | linux.MS_NOEXEC, PTS_OPTIONS)
        _attach(scratch_fd, request["scratch"], read_only=False)
        _attach(conn_fd, request["conn_dir"], read_only=True)
        pid = os.fork()
        if pid == 0:
            _run_init(request, preloaded)
        code = _exit_code(os.waitpid(pid, 0)[1])
    except BaseException as e:      # report why, in the kernel's output the grader shows
        print(f"warm sandbox set-up failed: {e}", file=sys.stderr, flush=True)
    os._exit(code)


def _run_init(request: dict, preloaded: dict[str, bytes]) -> None:
    """Process 2: PID 1 of the submission's PID namespace; never returns."""
    code = 127
    try:
        linux.set_process_name("warm-init")
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        linux.mount("proc", "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
        kernel = os.fork()
        if kernel == 0:
            _run_kernel(request, preloaded)
        while True:                 # reap orphans until the kernel itself ends
            pid, status = os.wait()
            if pid == kernel:
                code = _exit_code(status)
                break
    except BaseException as e:
        print(f"warm sandbox init failed: {e}", file=sys.stderr, flush=True)
    os._exit(code)


def _drop_privileges(uid: int, limits: dict[str, int]) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    linux.drop_bounding_set()
    os.setresuid(uid, uid, uid)
    linux.clear_capabilities()
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, f"RLIMIT_{name.upper()}"), (value, value))
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)     # cleared by the UID change


def _fresh_state(request: dict, preloaded: dict[str, bytes]) -> None:
    """What a cold kernel would have: its own random state, the scratch dir's own support modules, no template
    modules, the clean environment."""
    os.environ.clear()
    os.environ.update(request["env"])
    random.seed(os.urandom(32))
    process = sys.modules.get("multiprocessing.process")     # its authkey is made once, at import
    if process is not None:
        process.current_process().authkey = os.urandom(32)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(numpy.frombuffer(os.urandom(32), dtype=numpy.uint32))
    for name, source in preloaded.items():
        path = os.path.join(request["scratch"], f"{name}.py")
        try:
            with open(path, "rb") as f:
                same = f.read() == source
        except OSError:
            same = False
        module = sys.modules.pop(name, None)
        if same and module is not None:
            module.__file__ = path
            sys.modules[name] = module
    package = __name__.rpartition(".")[0]        # this package, as the template imported it
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]
    sys.path[:] = [p for p in sys.path if p != request["template_dir"]]
    sys.argv[:] = ["ipykernel_launcher", "-f", request["conn_file"]]


def _run_kernel(request: dict, preloaded: dict[str, bytes]) -> None:
    """Process 3: the submission's kernel; never returns."""
    from .seccomp import build_filter     # loaded by the template: no file access here
    try:
        linux.set_process_name(os.path.basename(sys.executable))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["scratch"])
        _drop_privileges(request["uid"], request["limits"])
        build_filter().load()
        _fresh_state(request, preloaded)
    except BaseException as e:
        print(f"warm kernel set-up failed: {e}", file=sys.stderr, flush=True)
        os._exit(127)
    from ipykernel import kernelapp
    kernelapp.launch_new_instance()
    os._exit(0)
