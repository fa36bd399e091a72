"""The warm-kernel template: a process inside a bwrap sandbox that imports what the kernels need once, then forks
one isolated kernel per submission (warm_child.py). It only ever runs trusted code.

Started by the grader (grading/sandbox/warm_template.py) as ``python -m _grading_in_sandbox.fork_server
--listen-fd N [--preload MODULE]... [--preload-file NAME=PATH]...``, with a listening Unix ``SOCK_SEQPACKET``
socket on fd N. Every message is one JSON object, possibly with descriptors attached:

* ``{"op": "hello"}`` on the first connection -> ``{"ready": true}`` once everything is imported. That connection
  is the template's lifeline: when it closes (the grader exited, even by SIGKILL), the template kills its children
  and exits.
* ``{"op": "fork", ...request}`` with three descriptors (the scratch directory's and the connection-file
  directory's detached mount trees, the write end of the kernel's output pipe), one per connection ->
  ``{"pid": P}`` (the child's PID in the template's namespace) or ``{"error": "..."}``; later ``{"exit": CODE}``
  (``subprocess.Popen.returncode`` convention) when the child is reaped. Closing the connection kills the child.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import types

from . import seccomp, warm_child  # noqa: F401 -- seccomp is preloaded for the children

MAX_MESSAGE = 1 << 16


def preload(modules: list[str], files: dict[str, str]) -> dict[str, bytes]:
    """Import `modules`, and each support module NAME from its file; {NAME: source bytes} of the latter."""
    for name in modules:
        importlib.import_module(name)
    sources = {}
    for name, path in files.items():
        with open(path, "rb") as f:
            sources[name] = f.read()
        module = types.ModuleType(name)
        module.__file__ = path
        sys.modules[name] = module
        exec(compile(sources[name], path, "exec"), module.__dict__)
    return sources


def send(conn: socket.socket, message: dict) -> None:
    try:
        conn.send(json.dumps(message).encode())
    except OSError:
        pass


class ForkServer:
    """Accepts connections, forks a child per fork request, reports exits (see the module docstring)."""

    def __init__(self, listener: socket.socket, preloaded: dict[str, bytes]):
        self.listener, self.preloaded = listener, preloaded
        self.selector = selectors.DefaultSelector()
        self.lifeline: socket.socket | None = None
        self.children: dict[int, socket.socket] = {}        # pid -> its connection
        wake_r, self.wake_w = socket.socketpair()
        wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w.fileno())
        self.selector.register(listener, selectors.EVENT_READ, self._accept)
        self.selector.register(wake_r, selectors.EVENT_READ, self._reap)

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                key.data(key.fileobj)

    def _accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        self.selector.register(conn, selectors.EVENT_READ, self._on_message)

    def _on_message(self, conn: socket.socket) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, 3)
        except OSError:
            data, fds = b"", []
        if not data:
            self._closed(conn)
            return
        try:
            request = json.loads(data)
        except ValueError:
            request = {}
        if request.get("op") == "hello" and self.lifeline is None:
            self.lifeline = conn
            send(conn, {"ready": True})
        elif request.get("op") == "fork" and len(fds) == 3 and conn not in self.children.values():
            self._fork(conn, request, fds)
        else:
            send(conn, {"error": "bad request"})
        for fd in fds:
            os.close(fd)

    def _fork(self, conn: socket.socket, request: dict, fds: list[int]) -> None:
        request["template_dir"] = os.getcwd()
        try:
            pid = os.fork()
        except OSError as e:
            send(conn, {"error": f"fork failed: {e}"})
            return
        if pid == 0:
            warm_child.run_sandbox(request, *fds, self.preloaded)
        self.children[pid] = conn
        send(conn, {"pid": pid})

    def _closed(self, conn: socket.socket) -> None:
        self.selector.unregister(conn)
        conn.close()
        if conn is self.lifeline:
            for pid in self.children:
                os.kill(pid, signal.SIGKILL)
            os._exit(0)
        for pid, owner in list(self.children.items()):
            if owner is conn:
                os.kill(pid, signal.SIGKILL)      # reaped (and forgotten) below

    def _reap(self, wake: socket.socket) -> None:
        try:
            wake.recv(4096)
        except BlockingIOError:
            pass
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is not None and conn.fileno() >= 0:
                send(conn, {"exit": os.waitstatus_to_exitcode(status)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--preload", action="append", default=[])
    parser.add_argument("--preload-file", action="append", default=[], help="NAME=PATH")
    args = parser.parse_args(argv)
    listener = socket.socket(fileno=args.listen_fd)
    try:
        preloaded = preload(args.preload, dict(item.split("=", 1) for item in args.preload_file))
    except BaseException as e:
        print(f"preload failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    ForkServer(listener, preloaded).serve()


if __name__ == "__main__":
    main()
