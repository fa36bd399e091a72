"""The grader's side of the warm-kernel template: starting it in bwrap, asking it for kernels, and one template per
process and settings.

The template (grading/in_sandbox/fork_server.py) runs under ``bwrap`` as root WITHOUT a user namespace, in its own
PID, network, IPC, UTS and cgroup namespaces, with the same read-only system, Python and ``/etc`` files and the
same clean environment as a cold kernel, and with just the capabilities its children need to isolate themselves
(mounts, UID/GID changes, the bounding set). bwrap's ``--seccomp`` cannot be used (the filter refuses the
children's own ``unshare`` and ``mount``), so each child loads it itself, last. The template sees none of the
course: only a copy of the package that runs inside the sandbox (grading/in_sandbox/, copied whole as
``_grading_in_sandbox``) and of the preloaded support files, in a private directory bound read-only.

Each kernel's scratch directory and connection-file directory are passed to the template as detached mount trees
(``open_tree``), so a quota tmpfs mounted after the template started is seen by that kernel alone. The template
lives until the grading process exits: its lifeline connection closes and it kills its children.
"""
from __future__ import annotations

import atexit
import dataclasses
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from grading import in_sandbox
from grading.in_sandbox import linux
from grading.sandbox.command import covered, mount_options
from grading.sandbox.processes import TailBuffer, descendants

TEMPLATE_CAPS = ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_KILL", "CAP_SYS_RESOURCE")
FORK_REPLY_S = 30.0
MAX_MESSAGE = 1 << 16


class WarmUnavailable(RuntimeError):
    """No warm kernel this time (the caller starts a cold sandboxed one)."""


@dataclasses.dataclass(frozen=True)
class TemplateSettings:
    """Everything that shapes a template (its key: one template per process and settings)."""

    bwrap: str
    python: str
    ro_binds: tuple[str, ...]
    etc_files: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    preload: tuple[str, ...]
    preload_files: tuple[tuple[str, bytes], ...]     # (module name, source): by content, not path
    covers: tuple[str, ...]          # directories each child covers with a fresh tmpfs
    tmp_size_mb: int
    start_timeout_s: float


def nspid(pid: int) -> list[int]:
    """The PIDs of `pid` in its PID namespace and those above it, outermost first (/proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(p) for p in line.split()[1:]]
    except OSError:
        pass
    return []


class WarmProcess:
    """The ``subprocess.Popen`` a kernel provisioner needs (grading/sandbox/provisioners.py, WarmProvisioner), for a
    kernel forked by the template: `pid` is the host PID of the child's sandbox process, `returncode` what the
    template reported when it reaped it."""

    stdin = stdout = stderr = None

    def __init__(self, conn: socket.socket, pid: int):
        self.conn, self.pid, self.returncode = conn, pid, None
        self._lock = threading.Lock()

    def _read(self, timeout: float) -> None:
        """Take the template's exit report if one comes within `timeout` (waiting without the lock, so a poll from
        another thread never waits for a wait)."""
        if self.returncode is None and timeout > 0:
            try:
                select.select([self.conn], [], [], timeout)
            except (OSError, ValueError):     # closed meanwhile by another thread
                pass
        with self._lock:
            if self.returncode is not None:
                return
            try:
                self.conn.setblocking(False)
                data = self.conn.recv(MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            message = json.loads(data) if data else {"exit": -signal.SIGKILL}   # no template: killed with it
            if "exit" in message:
                self.returncode = int(message["exit"])
                self.conn.close()

    def poll(self) -> int | None:
        self._read(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired("warm kernel", timeout or 0)
            self._read(min(left, 0.5))
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def close(self) -> None:
        self.conn.close()


class WarmTemplate:
    """One running template (see the module docstring)."""

    def __init__(self, settings: TemplateSettings):
        self.settings = settings
        self.home = tempfile.mkdtemp(prefix="warm-template-")
        self.socket_path = os.path.join(self.home, "control")
        self.code_dir = os.path.join(self.home, "code")
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _copy_code(self) -> list[str]:
        """A copy of the in-sandbox package (whole) and of the preloaded files; --preload-file arguments."""
        package = os.path.join(self.code_dir, in_sandbox.INSIDE)
        os.makedirs(package)
        for name, source in in_sandbox.sources().items():
            with open(os.path.join(package, name), "w", encoding="utf-8") as f:
                f.write(source)
        args = []
        for name, source in self.settings.preload_files:
            with open(os.path.join(self.code_dir, f"{name}.py"), "wb") as f:
                f.write(source)
            args.append(f"--preload-file={name}={os.path.join(self.code_dir, f'{name}.py')}")
        os.chmod(self.home, 0o700)
        return args

    def _command(self, listen_fd: int, preload_files: list[str]) -> list[str]:
        s = self.settings
        args = [s.bwrap, "--new-session", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--hostname", "sandbox", "--cap-drop", "ALL"]
        for cap in TEMPLATE_CAPS:
            args += ["--cap-add", cap]
        args += mount_options(self.code_dir, s.ro_binds, s.etc_files, s.tmp_size_mb, True, work_bind="--ro-bind")
        for path in s.covers:
            if not covered(path, ["/tmp", "/dev"]):
                args += ["--tmpfs", path]
        args.append("--clearenv")
        for key, value in s.env:
            args += ["--setenv", key, value]
        return [*args, "--", s.python, "-m", f"{in_sandbox.INSIDE}.fork_server", f"--listen-fd={listen_fd}",
                *(f"--preload={m}" for m in s.preload), *preload_files]

    def _start(self) -> None:
        preload_files = self._copy_code()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(self.socket_path)
        listener.listen(64)
        read_fd, write_fd = os.pipe()
        try:
            self.popen = subprocess.Popen(self._command(listener.fileno(), preload_files), stdin=subprocess.DEVNULL,
                                          stdout=write_fd, stderr=write_fd, pass_fds=(listener.fileno(),),
                                          env={"PATH": "/usr/bin:/bin"})
        finally:
            os.close(write_fd)
            listener.close()
        self.output = TailBuffer(read_fd)
        self.lifeline = self._connect()
        self.lifeline.send(json.dumps({"op": "hello"}).encode())
        deadline = time.monotonic() + self.settings.start_timeout_s
        while not select.select([self.lifeline], [], [], 0.1)[0]:
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise WarmUnavailable(self._failure("the template did not start"))
        try:
            ready = self.lifeline.recv(MAX_MESSAGE)
        except OSError:                 # reset: the template exited with the hello unread
            ready = b""
        if not ready:
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            raise WarmUnavailable(self._failure("the template exited"))
        self.depth = len(nspid(self.popen.pid)) + 1

    def _connect(self) -> socket.socket:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        conn.connect(self.socket_path)
        return conn

    def _failure(self, what: str) -> str:
        time.sleep(0.05)        # the last words of a template that just exited
        lines = self.output.text().strip().splitlines()
        return f"{what}: {lines[-1]}" if lines else what

    def alive(self) -> bool:
        return self.popen.poll() is None

    def fork(self, request: dict, scratch: str, conn_dir: str) -> tuple[WarmProcess, int]:
        """A kernel for `request` (see fork_server.py); (its process, the read end of its output pipe)."""
        read_fd, write_fd = os.pipe()
        trees: list[int] = []
        conn = None
        try:
            trees = [linux.open_tree(scratch), linux.open_tree(conn_dir)]
            conn = self._connect()
            socket.send_fds(conn, [json.dumps({"op": "fork", **request}).encode()], [*trees, write_fd])
            conn.settimeout(FORK_REPLY_S)
            data = conn.recv(MAX_MESSAGE)
            reply = json.loads(data) if data else {"error": self._failure("the template exited")}
            if "pid" not in reply:
                raise WarmUnavailable(reply.get("error", "no reply"))
            return WarmProcess(conn, self._host_pid(reply["pid"])), read_fd
        except BaseException as e:
            if conn is not None:
                conn.close()
            os.close(read_fd)
            raise e if isinstance(e, WarmUnavailable) else WarmUnavailable(f"fork failed: {e}") from e
        finally:
            for fd in [*trees, write_fd]:
                os.close(fd)

    def _host_pid(self, pid: int) -> int:
        for host_pid in descendants(self.popen.pid):
            ids = nspid(host_pid)
            if len(ids) == self.depth and ids[-1] == pid:
                return host_pid
        raise WarmUnavailable(f"the template's child {pid} is not among its processes")

    def close(self) -> None:
        lifeline = getattr(self, "lifeline", None)
        if lifeline is not None:
            lifeline.close()
        popen = getattr(self, "popen", None)
        if popen is not None:
            try:
                popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        shutil.rmtree(self.home, ignore_errors=True)


_templates: dict[TemplateSettings, WarmTemplate] = {}
_starts: dict[TemplateSettings, int] = {}
_failed: dict[TemplateSettings, str] = {}
_lock = threading.Lock()


def template_for(settings: TemplateSettings, max_starts: int) -> WarmTemplate:
    """This process's template for `settings`, made on first use and re-made when it died (at most `max_starts`
    starts); WarmUnavailable when it cannot be had."""
    with _lock:
        template = _templates.get(settings)
        if template is not None and template.alive():
            return template
        if template is not None:
            del _templates[settings]
            template.close()
        if settings in _failed:
            raise WarmUnavailable(_failed[settings])
        if _starts.get(settings, 0) >= max_starts:
            raise WarmUnavailable(f"the template died {max_starts} times")
        _starts[settings] = _starts.get(settings, 0) + 1
        try:
            _templates[settings] = WarmTemplate(settings)
        except Exception as e:          # cannot be made: never retried for these settings
            _failed[settings] = str(e)
            raise WarmUnavailable(str(e)) from e
        return _templates[settings]


@atexit.register
def close_all() -> None:
    with _lock:
        for template in _templates.values():
            template.close()
        _templates.clear()
