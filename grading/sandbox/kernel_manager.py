"""A Jupyter kernel manager that runs every kernel inside a bubblewrap (``bwrap``) sandbox.

Autograding executes student notebooks, and the threat model is that student code is hostile: it may try to read
the course directory (``source/``, hidden tests, ``gradebook.db``), other students' submissions, or the instructor's
environment variables; to open network connections; to exhaust memory, CPU or disk; or to escape and tamper with
the grading process itself. :class:`SandboxedKernelManager` is a drop-in ``AsyncKernelManager`` (nbclient and
nbgrader accept it as ``kernel_manager_class``) whose kernel process starts inside a fresh set of Linux namespaces,
launched by its kernel provisioner (grading/sandbox/provisioners.py, selected through the kernel spec's metadata):
what the kernel sees and its limits are in grading/sandbox/command.py, its syscall filter in
grading/in_sandbox/seccomp.py, how its processes are found and killed in grading/sandbox/processes.py, its UID in
grading/sandbox/uids.py, its sockets in grading/sandbox/sockets.py. Its subclass
grading/sandbox/warm_kernels.py (WarmKernelManager) forks the kernel from a warm template instead, isolated the
same way.

Grader-side limits
------------------
Everything the kernel sends is untrusted. The grader's ZeroMQ sockets to the kernel refuse any single message above
``max_message_mb`` (``ZMQ_MAXMSGSIZE``: libzmq drops it before Python allocates anything) and queue at most
``iopub_hwm`` messages, so a kernel printing 100 MB at once, or flooding output while the grader is busy, costs the
grader a bounded amount of memory. The kernel's own stdout/stderr (outside the notebook protocol) go to a pipe of
which only the last 16 KiB are kept.

If ``bwrap`` (or ``prlimit``/``setpriv`` when needed) is missing, starting a kernel fails with a one-line
:class:`SandboxError`; this module never falls back to running student code unsandboxed.
"""
from __future__ import annotations

import asyncio
import os
import sys
import time
import typing as t
import weakref

import zmq
from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default

from grading.sandbox.command import (SandboxError, covered, default_kernel_env, require_executable, rlimit_options,
                                     sandbox_command)
from grading.sandbox.processes import SandboxProcesses, TailBuffer
from grading.sandbox.provisioners import SANDBOXED, SandboxedProvisioner, SandboxKernelSpecs
from grading.sandbox.sockets import RuntimeDirs, prepare_scratch
from grading.sandbox.uids import allocate_uid, release_uid

__all__ = ["SandboxError", "SandboxedKernelManager"]

SOCKET_CHANNELS = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


class SandboxedKernelManager(SandboxProcesses, AsyncKernelManager):
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

    system_ro_binds = List(Unicode(), ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"],
                           help="Host paths bound read-only (missing ones are skipped).").tag(config=True)
    etc_files = List(Unicode(), ["/etc/ld.so.cache", "/etc/ld.so.preload", "/etc/localtime"],
                     help="The only files of /etc the kernel sees, read-only (missing ones are skipped); measured "
                          "with strace on the solved notebook.").tag(config=True)
    seccomp = Bool(True, help="Run the kernel under the syscall filter of grading/in_sandbox/seccomp.py.").tag(
        config=True)
    extra_ro_binds = List(Unicode(), [], help="More read-only binds, e.g. a shared data directory.").tag(config=True)
    unshare_pid = Bool(True, help="Give the kernel its own PID namespace (see module docstring).").tag(config=True)
    drop_privileges = Bool(True, help="When the grader runs as root, run the kernel under a fresh unused UID.").tag(
        config=True)
    sandbox_uid = Integer(-1, help="UID/GID for the kernel when dropping privileges; -1 = a random free UID in "
                                   "[sandbox_uid_base, sandbox_uid_base + sandbox_uid_count).").tag(config=True)
    sandbox_uid_base = Integer(1_800_000_000, help="Start of the range of random sandbox UIDs.").tag(config=True)
    sandbox_uid_count = Integer(1 << 24, help="Size of the range of random sandbox UIDs.").tag(config=True)

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

    provisioner_name: t.ClassVar[str] = SANDBOXED      # the entry point of the provisioner its kernel spec names

    @default("kernel_env")
    def _kernel_env_default(self) -> dict:
        return default_kernel_env()

    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self) -> SandboxKernelSpecs:
        return SandboxKernelSpecs(data_dir=self.data_dir, provisioner=self.provisioner_name)

    def __init__(self, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        self.transport = "ipc"
        self._uid: int | None = None
        self._release_uid: weakref.finalize | None = None
        self._dirs = RuntimeDirs(self.runtime_root)
        self._output: TailBuffer | None = None

    # ------------------------------------------------------------------ privileges and paths

    @property
    def kernel_uid(self) -> int | None:
        """UID the kernel runs as, or None when it keeps the grader's UID (grader not root)."""
        if self._uid is None and self.drop_privileges and os.geteuid() == 0:
            self._uid = allocate_uid(self.sandbox_uid_base, self.sandbox_uid_count, self.sandbox_uid)
            self._release_uid = weakref.finalize(self, release_uid, self._uid)
        return self._uid

    def write_connection_file(self, **kwargs: t.Any) -> None:
        super().write_connection_file(**kwargs)
        if self.kernel_uid is not None and os.path.exists(self.connection_file):
            os.chmod(self.connection_file, 0o644)   # readable by the kernel's UID; the directory is grader-private

    # ------------------------------------------------------------------ command line

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        """The ipykernel launch command wrapped in bwrap + setpriv + prlimit.

        The kernelspec's argv is deliberately ignored: the sandbox always runs ``python_executable -m
        ipykernel_launcher`` from the trusted, read-only environment.
        """
        if not isinstance(self.provisioner, SandboxedProvisioner):      # never launch without the sandbox's own
            raise SandboxError(f"the kernel's provisioner is {type(self.provisioner).__name__}, not the sandbox's")
        bwrap = require_executable(self.bwrap_path, "bubblewrap")
        prlimit = require_executable(self.prlimit_path, "prlimit")
        uid = self.kernel_uid
        setpriv = require_executable(self.setpriv_path, "setpriv") if uid is not None else None
        inner = [self.python_executable, "-m", "ipykernel_launcher", "-f", self.connection_file,
                 *(extra_arguments or [])]
        return sandbox_command(
            inner, bwrap=bwrap, scratch_dir=self.scratch_dir, ro_binds=self.ro_bind_paths(),
            ro_bind_exact=[*self.etc_paths(), *([self._dirs.conn_dir] if self._dirs.conn_dir else [])],
            env=self.sandbox_env(), tmp_size_mb=self.tmp_size_mb, unshare_pid=self.unshare_pid,
            uid=uid, setpriv=setpriv, prlimit=prlimit, seccomp_fd=self.provisioner.seccomp_fd,
            limits=rlimit_options(**self.limit_settings()))

    def sandbox_env(self, *, passed: bool = True) -> dict[str, str]:
        """The kernel's entire environment (`passed`: with the grader's pass_env variables)."""
        env = dict(self.kernel_env)
        if passed:
            env.update({name: os.environ[name] for name in self.pass_env if name in os.environ})
        env.update({str(k): str(v) for k, v in self.extra_env.items()})
        return env

    def ro_bind_paths(self) -> list[str]:
        """Host directories bound read-only at the same path: system, Python installation and venv, extra."""
        python_roots = {os.path.normpath(sys.base_prefix), os.path.normpath(sys.prefix)}
        exe = os.path.realpath(self.python_executable)
        if not covered(exe, python_roots):
            python_roots.add(os.path.dirname(os.path.dirname(exe)))
        return [*self.system_ro_binds, *sorted(python_roots), *self.extra_ro_binds]

    def etc_paths(self) -> list[str]:
        return [f for f in self.etc_files if os.path.exists(f)]

    def limit_settings(self) -> dict[str, t.Any]:
        """Keyword arguments of grading.sandbox.command.rlimits for this kernel."""
        return dict(memory_mb=self.memory_limit_mb, file_size_mb=self.file_size_limit_mb,
                    open_files=self.max_open_files, cpu_s=self.cpu_time_limit_s, processes=self.max_processes,
                    own_uid=self.kernel_uid is not None)

    # ------------------------------------------------------------------ lifecycle (called by the provisioner)

    def prepare_launch(self, kw: dict[str, t.Any]) -> None:
        """Before each launch: the scratch directory, a fresh connection file in fresh directories, the launch's
        working directory and bwrap's own environment (the kernel's is set by --setenv)."""
        require_executable(self.bwrap_path, "bubblewrap")
        prepare_scratch(self.scratch_dir, self.kernel_uid)
        self.cleanup_connection_file()
        self.connection_file, self.ip = self._dirs.make(self.scratch_dir, self.kernel_uid)
        for name in SOCKET_CHANNELS:
            setattr(self, name, 0)
        kw["cwd"] = self.scratch_dir
        kw["env"] = {"PATH": "/usr/bin:/bin"}

    def capture_output(self, read_fd: int) -> None:
        """Keep the tail of the kernel process's own stdout/stderr (the read end of its pipe)."""
        self._output = TailBuffer(read_fd)

    async def wait_for_sockets(self) -> None:
        """After the launch: until the kernel's five socket files exist, then lock their directory."""
        paths = [f"{self.ip}-{getattr(self, name)}" for name in SOCKET_CHANNELS]
        deadline = time.monotonic() + self.socket_wait_s
        while not self._dirs.sockets_ready(paths):
            if self.sandbox_exit_status() is not None or time.monotonic() > deadline:
                status = self.describe_exit()
                self.kill_now()
                tail = self._output.text().strip().splitlines()[-5:] if self._output else []
                raise SandboxError("sandboxed kernel failed to start (" + status + ")"
                                   + (": " + " | ".join(tail) if tail else ""))
            await asyncio.sleep(0.01)
        self._dirs.lock(self.kernel_uid)

    async def cleanup_resources(self, restart: bool = False) -> None:  # type: ignore[override]
        """jupyter_client's clean-up (the provisioner's too), then this manager's directories and UID, also when no
        kernel was ever started."""
        try:
            await super().cleanup_resources(restart=restart)
        finally:
            self.release_launch(restart)

    def release_launch(self, restart: bool) -> None:
        """After the kernel is gone (the provisioner's clean-up, or cleanup_resources): its directories, and (unless
        it restarts) its UID. Idempotent."""
        if restart:
            self._dirs.remove()
        else:
            self._dirs.close()
        if not restart and self._release_uid is not None:
            self._release_uid()     # the kernel is gone: its UID may serve another one
            self._uid = self._release_uid = None

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

    def kernel_output_tail(self) -> str:
        """Last bytes the kernel process wrote to its own stdout/stderr (not the notebook's streams)."""
        return self._output.text() if self._output else ""
