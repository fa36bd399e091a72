"""The sandbox's processes seen from the host: finding, signalling and describing them, and the kernel's own
stdout/stderr.

``jupyter_client`` interrupts a kernel by signalling the launched process's group; the launched process is ``bwrap``
and the kernel runs in a new session inside it, so the sandboxed processes are found through ``/proc`` and
signalled directly, and on shutdown the whole sandbox (every descendant, then ``bwrap``) is killed.
"""
from __future__ import annotations

import os
import signal
import threading
import typing as t

EXIT_HINTS = {"SIGKILL": " (killed: memory, CPU-time limit or grader)", "SIGXCPU": " (CPU-time limit)",
              "SIGXFSZ": " (file-size limit)", "SIGSEGV": " (segmentation fault)"}


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


def descendants(pid: int) -> list[int]:
    children = _proc_children()
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def command_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def signal_all(pids: list[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass


def describe_exit(status: int | None) -> str:
    """bwrap's exit status (None: running, -1: never started, <0 or >128: a signal) in words."""
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
    return f"killed by {name}{EXIT_HINTS.get(name, '')}"


class TailBuffer:
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


class SandboxProcesses:
    """The sandbox's processes, controlled synchronously (usable from any thread, inside or outside the event
    loop); mixed into the kernel manager, whose ``provisioner.process`` is the launched bwrap."""

    provisioner: t.Any
    # Names of the sandbox's own trusted processes, which are never sent a kernel's signals.
    sandbox_process_names: tuple[str, ...] = ("bwrap",)

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
        """How the sandbox ended, in words ("killed by SIGSEGV (segmentation fault)")."""
        return describe_exit(self.sandbox_exit_status())

    def kernel_pids(self) -> list[int]:
        """Host PIDs of the sandboxed processes (excluding the sandbox's own: bwrap, or a warm kernel's
        set-up processes)."""
        pid = self.sandbox_pid
        if pid is None:
            return []
        return [p for p in descendants(pid) if command_name(p) not in self.sandbox_process_names]

    def interrupt_now(self) -> None:
        """SIGINT to every process in the sandbox (what a notebook's interrupt button does)."""
        signal_all(self.kernel_pids(), signal.SIGINT)

    def kill_now(self) -> None:
        """SIGKILL the sandboxed processes and bwrap, synchronously."""
        pid = self.sandbox_pid
        if pid is None:
            return
        signal_all([*descendants(pid), pid], signal.SIGKILL)
        proc = self.provisioner.process if self.provisioner else None
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except Exception:
                pass
