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
