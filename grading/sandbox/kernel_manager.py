"""A Jupyter kernel manager that runs every kernel inside a bubblewrap (``bwrap``) sandbox.

Why
---
Autograding executes student notebooks, and the threat model is that student code is hostile: it may try to read
the course directory (``source/``, hidden tests, ``gradebook.db``), other students' submissions, or the instructor's
environment variables; to open network connections; to exhaust memory, CPU or disk; or to escape and tamper with
the grading process itself. :class:`SandboxedKernelManager` is a drop-in ``AsyncKernelManager`` (nbclient and
nbgrader accept it as ``kernel_manager_class``) whose kernel process starts inside a fresh set of Linux namespaces.

What the kernel sees
--------------------
* **No network at all**: a new network namespace (only a private loopback). Because TCP between the grader and a
  kernel in another network namespace is impossible, the kernel talks to the grader over ZeroMQ ``ipc`` (Unix
  domain) sockets whose files live in a directory that is bound into the sandbox *at the same absolute path*.
* **A minimal, read-only filesystem**: ``/usr`` (and the ``/bin``, ``/lib*`` links or directories), ``/etc``, the
  Python installation (``sys.base_prefix``) and the virtual environment (``sys.prefix``), all read-only; fresh
  ``/dev`` and (with the PID namespace) ``/proc``; a private, size-capped tmpfs on ``/tmp`` (also ``HOME``) and
  ``/dev/shm``; and exactly **one writable directory**, the per-notebook scratch directory, which is the kernel's
  working directory and holds a copy of the notebook's support files. The course directory, ``source/``, the
  gradebook and other students' files are simply not mounted.
* **Its own PID, IPC and UTS namespaces**. The notes in ``/work/shared/notes/sandbox.md`` observed that ipykernel
  shuts itself down in a new PID namespace ("Parent appears to have exited"): that is ipykernel's parent poller,
  which is only armed when the ``JPY_PARENT_PID`` environment variable is set. The kernel gets a clean environment
  (``bwrap --clearenv``), so the poller is never armed and the PID namespace can be unshared, which (a) hides and
  protects every host process (a sandboxed process cannot signal or ptrace what it cannot name) and (b) guarantees
  clean-up: when the sandbox's init dies (``--die-with-parent``), the kernel kills every process it forked, even
  daemonised ones. ``unshare_pid = False`` restores the shared namespace.
* **No privileges**: all capabilities are dropped and ``no_new_privs`` is set. When the grader runs as root, the
  kernel additionally runs under a fresh, otherwise unused UID/GID (``setpriv``), so it cannot read root-only files
  in the read-only binds (``/etc/shadow``, SSH host keys), cannot touch processes of any other kernel, and cannot
  modify the socket directory once the kernel is up (see below).
* **A clean environment**: only ``PATH``, ``HOME``, ``LANG``, ``MPLBACKEND=Agg``, one BLAS/OpenMP thread per kernel
  (``OMP_NUM_THREADS=1`` etc.), a few harmless Python/IPython settings and nbgrader's ``NBGRADER_EXECUTION``; no
  instructor variables leak in.
* **Resource limits** (``prlimit`` in the wrapped command): address space (default 2 GiB), CPU seconds, maximum
  file size, number of processes (only with a dedicated UID: ``RLIMIT_NPROC`` counts per UID), open files, and no
  core dumps.

Socket hygiene
--------------
The kernel must be able to create its socket files, so the socket directory sits inside the writable scratch
directory. When the grader is root, the scratch directory is root-owned and sticky (mode 1777) and the socket
directory is root-owned; as soon as the five socket files exist (and are verified to be sockets, not symlinks) the
grader makes the socket directory read-only to the kernel's UID, so student code can neither delete nor replace a
socket with a symlink that would make the grader connect to some other Unix socket on the host. The connection file
(with the HMAC key, which the kernel knows anyway) lives in a separate grader-private directory bound read-only.

Grader-side limits
------------------
Everything the kernel sends is untrusted. The grader's ZeroMQ sockets to the kernel refuse any single message above
``max_message_mb`` (``ZMQ_MAXMSGSIZE``: libzmq drops it before Python allocates anything) and queue at most
``iopub_hwm`` messages, so a kernel printing 100 MB at once, or flooding output while the grader is busy, costs the
grader a bounded amount of memory. The kernel's own stdout/stderr (outside the notebook protocol) go to a pipe of
which only the last 16 KiB are kept.

Interrupts and kills
--------------------
``jupyter_client`` interrupts a kernel by signalling the launched process's group; the launched process is ``bwrap``
and the kernel runs in a new session inside it, so this manager instead signals the sandboxed processes directly
(found through ``/proc``), and kills the whole sandbox (every descendant, then ``bwrap``) on shutdown.

If ``bwrap`` (or ``prlimit``/``setpriv`` when needed) is missing, starting a kernel fails with a one-line
:class:`SandboxError`; this module never falls back to running student code unsandboxed.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import typing as t

import zmq
from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default

__all__ = ["SandboxError", "SandboxedKernelManager", "sandbox_command", "require_executable"]


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


def _ancestors(path: str) -> list[str]:
    """'/a/b/c' -> ['/a', '/a/b'] (proper ancestors, outermost first)."""
    parts = os.path.normpath(path).strip(os.sep).split(os.sep)
    return [os.sep + os.sep.join(parts[:i]) for i in range(1, len(parts))]


def _covered(path: str, roots: t.Iterable[str]) -> bool:
    path = os.path.normpath(path)
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


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
) -> list[str]:
    """The full ``bwrap ... -- [setpriv ...] [prlimit ...] inner...`` command line.

    ro_binds: host paths bound read-only at the same path (a top-level symlink such as ``/bin -> usr/bin`` is
        recreated as a symlink); ro_bind_exact: further read-only binds (e.g. the connection-file directory);
    scratch_dir: the one writable bind, also the working directory; uid: run as this UID/GID (needs root);
    limits: ``prlimit`` options such as ``--as=2147483648``.
    Order matters in bwrap: the tmpfs on /tmp comes before binds below /tmp, parents are created (0755) before
    the binds inside them.
    """
    args = [bwrap, "--die-with-parent", "--new-session", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "sandbox"]
    if unshare_pid:
        args.append("--unshare-pid")
    if os.geteuid() != 0:
        # Unprivileged bwrap needs a user namespace; also forbid nested ones from inside.
        args += ["--unshare-user", "--disable-userns"]
    args += ["--cap-drop", "ALL"]
    if uid is not None:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]

    made: set[str] = set()     # directories created inside the sandbox
    bound: list[str] = []      # sandbox paths that are mounts (their subtree is visible)

    def mkparents(path: str) -> None:
        for anc in _ancestors(path):
            if anc in made or _covered(anc, bound):
                continue
            args.extend(["--perms", "0755", "--dir", anc])
            made.add(anc)

    # Private /tmp BEFORE anything bound below it (a later tmpfs would hide the bind): the course, its .venv or
    # the Python installation may well live under /tmp (a CI checkout, a temporary course).
    args += ["--perms", "1777", "--size", str(tmp_size_mb << 20), "--tmpfs", "/tmp"]
    made.add("/tmp")
    # Read-only system and Python trees (system dirs first, then deeper ones).
    for path in sorted(dict.fromkeys(os.path.normpath(p) for p in ro_binds), key=lambda p: (p.count(os.sep), p)):
        if not os.path.lexists(path) or _covered(path, bound):
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
    args += ["--bind", scratch_dir, scratch_dir, "--chdir", scratch_dir]
    args.append("--clearenv")
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


def _proc_children() -> dict[int, list[int]]:
    """ppid -> [pid] for every process visible in /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        try:
            ppid = int(data.rsplit(b")", 1)[1].split()[1])
        except (IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    return children


def _descendants(pid: int) -> list[int]:
    children = _proc_children()
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


class _TailBuffer:
    """Drains a pipe in a daemon thread, keeping only the last `limit` bytes (kernel stdout/stderr)."""

    def __init__(self, fd: int, limit: int = 16384):
        self.fd, self.limit, self.data = fd, limit, b""
        self.thread = threading.Thread(target=self._run, name="sandbox-kernel-output", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                self.data = (self.data + chunk)[-self.limit:]
        except OSError:
            pass
        finally:
            try:
                os.close(self.fd)
            except OSError:
                pass

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class SandboxedKernelManager(AsyncKernelManager):
    """AsyncKernelManager whose kernels run in a bubblewrap sandbox (see the module docstring).

    Set ``scratch_dir`` (the one writable directory, the kernel's cwd) before starting the kernel. All limits are
    configurable, e.g. in nbgrader_config.py: ``c.SandboxedKernelManager.memory_limit_mb = 4096``.
    """

    bwrap_path = Unicode("bwrap", help="bubblewrap executable (name on PATH or absolute path).").tag(config=True)
    prlimit_path = Unicode("prlimit", help="util-linux prlimit executable.").tag(config=True)
    setpriv_path = Unicode("setpriv", help="util-linux setpriv executable (used when the grader is root).").tag(
        config=True)
    python_executable = Unicode(sys.executable, help="Python that runs ipykernel inside the sandbox.").tag(
        config=True)
    scratch_dir = Unicode("", help="The single writable directory, bound at the same path and used as cwd.").tag(
        config=True)
    runtime_root = Unicode("", help="Where the grader-private connection-file directories are created "
                                    "(default: the system temp dir).").tag(config=True)

    memory_limit_mb = Integer(2048, help="Address-space cap of each sandboxed process (RLIMIT_AS), MiB.").tag(
        config=True)
    cpu_time_limit_s = Integer(600, help="CPU seconds per sandboxed process (RLIMIT_CPU); 0 = unlimited.").tag(
        config=True)
    file_size_limit_mb = Integer(256, help="Largest file a sandboxed process may write (RLIMIT_FSIZE), MiB.").tag(
        config=True)
    max_processes = Integer(64, help="Processes+threads of the sandbox UID (RLIMIT_NPROC). Only applied when the "
                                     "kernel runs under its own UID (grader is root); 0 = unlimited.").tag(config=True)
    max_open_files = Integer(1024, help="RLIMIT_NOFILE of the kernel.").tag(config=True)
    tmp_size_mb = Integer(256, help="Size of the private tmpfs on /tmp and on /dev/shm, MiB each.").tag(config=True)

    system_ro_binds = List(Unicode(), ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"],
                           help="Host paths bound read-only (missing ones are skipped).").tag(config=True)
    extra_ro_binds = List(Unicode(), [], help="More read-only binds, e.g. a shared data directory.").tag(config=True)
    unshare_pid = Bool(True, help="Give the kernel its own PID namespace (see module docstring).").tag(config=True)
    drop_privileges = Bool(True, help="When the grader runs as root, run the kernel under a fresh unused UID.").tag(
        config=True)
    sandbox_uid = Integer(-1, help="UID/GID for the kernel when dropping privileges; -1 = a random UID in "
                                   "[sandbox_uid_base, sandbox_uid_base + 2**24).").tag(config=True)
    sandbox_uid_base = Integer(1_800_000_000, help="Start of the range of random sandbox UIDs.").tag(config=True)

    kernel_env = Dict(help="The kernel's entire environment (bwrap --clearenv first).").tag(config=True)
    extra_env = Dict({}, help="Added to kernel_env.").tag(config=True)
    pass_env = List(Unicode(), ["NBGRADER_EXECUTION", "NBGRADER_VALIDATING"],
                    help="Variables copied from the grader's environment when set (nbgrader sets these so that "
                         "notebooks can tell they are being autograded).").tag(config=True)

    max_message_mb = Integer(8, help="Largest ZeroMQ message the grader accepts from the kernel (ZMQ_MAXMSGSIZE); "
                                     "a bigger one is dropped by libzmq before it reaches Python.").tag(config=True)
    iopub_hwm = Integer(64, help="Receive high-water mark (messages) of the grader's sockets, bounding what an "
                                 "unread kernel can queue in the grader to about iopub_hwm * max_message_mb.").tag(
        config=True)
    socket_wait_s = Float(60.0, help="How long to wait for the kernel's socket files after launch.").tag(config=True)

    @default("kernel_env")
    def _kernel_env_default(self) -> dict:
        prefix_bin = os.path.join(sys.prefix, "bin")
        return {
            "PATH": f"{prefix_bin}:/usr/local/bin:/usr/bin:/bin",
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

    def __init__(self, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        self.transport = "ipc"
        self._uid: int | None = None
        self._conn_dir: str | None = None
        self._sock_dir: str | None = None
        self._output: _TailBuffer | None = None
        self._runtime_parent: str | None = None

    # ------------------------------------------------------------------ privileges and paths

    @property
    def kernel_uid(self) -> int | None:
        """UID the kernel runs as, or None when it keeps the grader's UID (grader not root)."""
        if self._uid is None and self.drop_privileges and os.geteuid() == 0:
            uid = self.sandbox_uid
            if uid < 0:
                uid = self.sandbox_uid_base + secrets.randbelow(1 << 24)
            if uid == 0:
                raise SandboxError("sandbox_uid must not be 0")
            self._uid = uid
        return self._uid

    def _prepare_scratch(self) -> None:
        scratch = self.scratch_dir
        if not scratch or not os.path.isabs(scratch) or not os.path.isdir(scratch):
            raise SandboxError(f"scratch_dir must be an existing absolute directory, got {scratch!r}")
        uid = self.kernel_uid
        if uid is None:
            return
        # Root-owned and sticky: the kernel may create files, but not rename or delete ours (socket dir, RPC
        # inputs). Files already there (support files) are handed to the kernel's UID, like a student's own files.
        os.chown(scratch, 0, 0)
        os.chmod(scratch, 0o1777)
        for dirpath, dirnames, filenames in os.walk(scratch):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                if os.path.basename(path).startswith(".ipc-"):
                    continue
                try:
                    os.lchown(path, uid, uid)
                except OSError:
                    pass

    def _make_runtime_dirs(self) -> None:
        """Fresh grader-private connection-file dir and fresh socket dir (inside scratch) for each start."""
        if self._runtime_parent is None:
            self._runtime_parent = tempfile.mkdtemp(prefix="sandbox-run-", dir=self.runtime_root or None)
        token = secrets.token_hex(6)
        self._conn_dir = os.path.join(self._runtime_parent, f"conn-{token}")
        os.mkdir(self._conn_dir, 0o755)
        os.chmod(self._conn_dir, 0o755)
        self._sock_dir = os.path.join(self.scratch_dir, f".ipc-{token}")
        os.mkdir(self._sock_dir, 0o700)
        if self.kernel_uid is not None:
            os.chmod(self._sock_dir, 0o777)    # locked down to 0755 once the sockets exist
        self.connection_file = os.path.join(self._conn_dir, f"kernel-{token}.json")
        self.ip = os.path.join(self._sock_dir, "k")
        for name in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
            setattr(self, name, 0)
        self._connection_file_written = False

    def _remove_runtime_dirs(self) -> None:
        for path in (self._conn_dir, self._sock_dir):
            if path:
                shutil.rmtree(path, ignore_errors=True)
        self._conn_dir = self._sock_dir = None

    def write_connection_file(self, **kwargs: t.Any) -> None:
        super().write_connection_file(**kwargs)
        if self.kernel_uid is not None and os.path.exists(self.connection_file):
            os.chmod(self.connection_file, 0o644)   # readable by the kernel's UID; the directory is grader-private

    # ------------------------------------------------------------------ command line

    def _limits(self) -> list[str]:
        mib = 1 << 20
        limits = [f"--as={self.memory_limit_mb * mib}", f"--fsize={self.file_size_limit_mb * mib}",
                  f"--nofile={self.max_open_files}", "--core=0"]
        if self.cpu_time_limit_s > 0:
            limits.append(f"--cpu={self.cpu_time_limit_s}")
        if self.max_processes > 0 and self.kernel_uid is not None:
            limits.append(f"--nproc={self.max_processes}")
        return limits

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        """The ipykernel launch command wrapped in bwrap + setpriv + prlimit.

        The kernelspec's argv is deliberately ignored: the sandbox always runs ``python_executable -m
        ipykernel_launcher`` from the trusted, read-only environment.
        """
        bwrap = require_executable(self.bwrap_path, "bubblewrap")
        prlimit = require_executable(self.prlimit_path, "prlimit")
        uid = self.kernel_uid
        setpriv = require_executable(self.setpriv_path, "setpriv") if uid is not None else None
        inner = [self.python_executable, "-m", "ipykernel_launcher", "-f", self.connection_file,
                 *(extra_arguments or [])]
        env = dict(self.kernel_env)
        env.update({name: os.environ[name] for name in self.pass_env if name in os.environ})
        env.update({str(k): str(v) for k, v in self.extra_env.items()})
        python_roots = {os.path.normpath(sys.base_prefix), os.path.normpath(sys.prefix)}
        exe = os.path.realpath(self.python_executable)
        if not _covered(exe, python_roots):
            python_roots.add(os.path.dirname(os.path.dirname(exe)))
        return sandbox_command(
            inner, bwrap=bwrap, scratch_dir=self.scratch_dir,
            ro_binds=[*self.system_ro_binds, *sorted(python_roots), *self.extra_ro_binds],
            ro_bind_exact=[self._conn_dir] if self._conn_dir else [],
            env=env, tmp_size_mb=self.tmp_size_mb, unshare_pid=self.unshare_pid,
            uid=uid, setpriv=setpriv, limits=self._limits(), prlimit=prlimit)

    # ------------------------------------------------------------------ lifecycle

    async def _async_pre_start_kernel(self, **kw: t.Any) -> tuple[list[str], dict[str, t.Any]]:
        require_executable(self.bwrap_path, "bubblewrap")
        self._prepare_scratch()
        self._remove_runtime_dirs()
        self._make_runtime_dirs()
        kw["cwd"] = self.scratch_dir
        kw["env"] = {"PATH": "/usr/bin:/bin"}     # bwrap's own environment; the kernel's is set by --setenv
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: t.Any) -> None:
        read_fd, write_fd = os.pipe()
        kw["stdin"] = subprocess.DEVNULL
        kw["stdout"] = write_fd
        kw["stderr"] = write_fd
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            os.close(write_fd)
        self._output = _TailBuffer(read_fd)

    async def _async_post_start_kernel(self, **kw: t.Any) -> None:
        await self._wait_for_sockets()
        await super()._async_post_start_kernel(**kw)

    async def _wait_for_sockets(self) -> None:
        import asyncio

        ports = [self.shell_port, self.iopub_port, self.stdin_port, self.control_port, self.hb_port]
        paths = [f"{self.ip}-{p}" for p in ports]
        deadline = time.monotonic() + self.socket_wait_s
        while True:
            ready = True
            for path in paths:
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    ready = False
                    break
                if not stat.S_ISSOCK(st.st_mode):
                    raise SandboxError(f"kernel socket {path} is not a socket; refusing to connect")
            if ready:
                break
            if self.sandbox_exit_status() is not None or time.monotonic() > deadline:
                status = self.describe_exit()
                await self._async_kill_kernel()
                tail = self._output.text().strip().splitlines()[-5:] if self._output else []
                raise SandboxError("sandboxed kernel failed to start (" + status + ")"
                                   + (": " + " | ".join(tail) if tail else ""))
            await asyncio.sleep(0.01)
        if self.kernel_uid is not None and self._sock_dir:
            os.chmod(self._sock_dir, 0o755)   # from now on the kernel cannot replace its socket files

    # ------------------------------------------------------------------ zmq limits

    def _limit_context(self, ctx: zmq.Context) -> None:
        ctx.setsockopt(zmq.MAXMSGSIZE, int(self.max_message_mb) << 20)
        ctx.setsockopt(zmq.RCVHWM, int(self.iopub_hwm))

    @default("context")
    def _context_default(self) -> zmq.asyncio.Context:
        self._created_context = True
        ctx = zmq.asyncio.Context()
        self._limit_context(ctx)
        return ctx

    def client(self, **kwargs: t.Any):  # type: ignore[override]
        kc = super().client(**kwargs)
        self._limit_context(kc.context)
        return kc

    def blocking_client(self):  # type: ignore[override]
        kc = super().blocking_client()
        self._limit_context(kc.context)
        return kc

    # ------------------------------------------------------------------ process control (sync, usable anywhere)

    @property
    def sandbox_pid(self) -> int | None:
        """PID of the launched bwrap process."""
        proc = getattr(self.provisioner, "process", None) if self.provisioner else None
        return proc.pid if proc is not None else None

    def sandbox_exit_status(self) -> int | None:
        """None while the sandbox runs, else bwrap's exit status (the kernel's, or 128+signal)."""
        proc = getattr(self.provisioner, "process", None) if self.provisioner else None
        if proc is None:
            return -1
        return proc.poll()

    def describe_exit(self) -> str:
        status = self.sandbox_exit_status()
        if status is None:
            return "still running"
        if status == -1:
            return "not started"
        if status < 0:
            sig = -status
        elif status > 128:
            sig = status - 128
        else:
            return f"exit status {status}"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = {"SIGKILL": " (killed: memory, CPU-time limit or grader)", "SIGXCPU": " (CPU-time limit)",
                "SIGXFSZ": " (file-size limit)", "SIGSEGV": " (segmentation fault)"}.get(name, "")
        return f"killed by {name}{hint}"

    def kernel_pids(self) -> list[int]:
        """Host PIDs of the sandboxed processes (excluding the bwrap processes themselves)."""
        pid = self.sandbox_pid
        if pid is None:
            return []
        return [p for p in _descendants(pid) if _comm(p) != "bwrap"]

    def interrupt_now(self) -> None:
        """SIGINT to every process in the sandbox (what a notebook's interrupt button does)."""
        for p in self.kernel_pids():
            try:
                os.kill(p, signal.SIGINT)
            except OSError:
                pass

    def kill_now(self) -> None:
        """SIGKILL the sandboxed processes and bwrap, synchronously."""
        pid = self.sandbox_pid
        if pid is None:
            return
        for p in [*_descendants(pid), pid]:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        proc = self.provisioner.process if self.provisioner else None
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except Exception:
                pass

    async def _async_interrupt_kernel(self) -> None:
        if self.has_kernel:
            self.interrupt_now()

    interrupt_kernel = _async_interrupt_kernel  # type: ignore[assignment]

    async def _async_kill_kernel(self, restart: bool = False) -> None:
        pid = self.sandbox_pid
        if pid is not None:
            for p in _descendants(pid):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        await super()._async_kill_kernel(restart=restart)

    _kill_kernel = _async_kill_kernel  # type: ignore[assignment]

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        try:
            await super()._async_cleanup_resources(restart=restart)
        finally:
            self._remove_runtime_dirs()
            if not restart and self._runtime_parent:
                shutil.rmtree(self._runtime_parent, ignore_errors=True)
                self._runtime_parent = None

    cleanup_resources = _async_cleanup_resources  # type: ignore[assignment]

    def kernel_output_tail(self) -> str:
        """Last bytes the kernel process wrote to its own stdout/stderr (not the notebook's streams)."""
        return self._output.text() if self._output else ""
