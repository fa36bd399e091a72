"""Serving the RPC in the student's kernel: the connection to the grader, the serving thread, interrupts.

The grader's bootstrap (grading/rpc/kernel_handle.py) installs this package in the kernel and calls :func:`start`:
the kernel connects to the grader's Unix socket, says hello, and a daemon thread answers one request frame at a
time with rpc_server.py's :class:`~rpc_server.Server`. When a call overruns its timeout the grader sends
``interrupt()`` to the kernel's idle main thread (a signal cannot reach a thread).
"""
from __future__ import annotations

import contextvars
import socket
import sys
import threading
from typing import Any, Callable

from . import wire
from .rpc_server import Server

_lock = threading.Lock()
_busy: set[int] = set()             # idents of serving threads inside a call (what interrupt() may interrupt)
_main_context: list = [None]        # the kernel main thread's context variables after its last execution


def _set_async_exc(tid: int, exc: type | None) -> None:
    """Raise `exc` asynchronously in thread `tid` (None: clear a pending one)."""
    import ctypes
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), None if exc is None else ctypes.py_object(exc))


def interrupt() -> None:
    """KeyboardInterrupt into every serving thread that is inside a call (sent by the grader to the kernel's idle
    main thread when a call overran its timeout: a signal cannot reach a thread)."""
    with _lock:
        for tid in _busy:
            _set_async_exc(tid, KeyboardInterrupt)


def _serve_one(server: Server, payload: bytearray, enter: Callable) -> bytes | list:
    tid = threading.get_ident()
    try:
        try:
            with _lock:
                _busy.add(tid)
            return enter(server.handle, payload)
        finally:
            with _lock:
                _busy.discard(tid)
                _set_async_exc(tid, None)
    except BaseException as e:      # an interrupt landed outside the call, or student code broke this module
        try:
            return wire.encode_payload({"ok": False, "etype": type(e).__name__[:wire.MAX_TYPE_NAME],
                                        "msg": "the RPC server failed in the kernel", "sync": []}, {})
        except BaseException:
            return b""


def _recv_exact(conn: socket.socket, n: int) -> bytearray | None:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = conn.recv_into(view[got:], n - got)
        if not k:
            return None
        got += k
    return buf


def serve_connection(conn: socket.socket, server: Server, enter: Callable = lambda fn, arg: fn(arg)) -> None:
    """Answer request frames on `conn` until it closes or breaks; `enter(fn, payload)` runs each call."""
    try:
        while True:
            prefix = _recv_exact(conn, wire.FRAME_LEN.size)
            if prefix is None or wire.FRAME_LEN.unpack(prefix)[0] > wire.MAX_REQUEST_BYTES:
                return
            payload = _recv_exact(conn, wire.FRAME_LEN.unpack(prefix)[0])
            if payload is None:
                return
            reply = _serve_one(server, payload, enter)
            wire.send_all(conn, wire.framed([reply] if isinstance(reply, (bytes, bytearray)) else reply))
    except BaseException:
        pass
    finally:
        try:
            conn.close()
        except BaseException:
            pass


def _snapshot_context(*args: Any) -> None:
    """post_execute hook (main thread): remember the main thread's context variables (numpy's errstate and print
    options, decimal's context, ...) so that calls served by the thread see what they would see in a cell."""
    _main_context[0] = contextvars.copy_context()


def _in_cell_context() -> Callable:
    """How the serving thread runs a call: in the main thread's latest context, with its output attributed to the
    grader's silent request that started the server (never to whatever cell the kernel ran last)."""
    parents = []
    for stream in (sys.stdout, sys.stderr):
        try:
            var = stream._parent_header
            parents.append((var, var.get()))
        except Exception:
            pass

    def run(fn: Callable, arg: Any) -> Any:
        for var, parent in parents:
            try:
                var.set(parent)
            except Exception:
                pass
        return fn(arg)

    def enter(fn: Callable, arg: Any) -> Any:
        ctx = _main_context[0]
        return run(fn, arg) if ctx is None else ctx.run(run, fn, arg)
    return enter


def start(path: str, ns: dict, options: dict) -> None:
    """In the kernel: connect to the grader's socket at `path`, say hello, serve `ns` from a daemon thread."""
    _snapshot_context()
    try:
        events = get_ipython().events     # noqa: F821 -- a builtin inside IPython
        if _snapshot_context not in events.callbacks["post_execute"]:
            events.register("post_execute", _snapshot_context)
    except Exception:
        pass
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(5)
    conn.connect(path)
    conn.settimeout(None)
    try:        # fewer wake-ups per multi-megabyte reply
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, wire.SOCKET_BUFFER)
    except OSError:
        pass
    conn.sendall(wire.frame(wire.encode_payload({"hello": options["version"]}, {})))
    server = Server(ns, options["max_reply"])
    threading.Thread(target=serve_connection, args=(conn, server, _in_cell_context()), name="grading-rpc",
                     daemon=True).start()
