"""The kernel side of the RPC: serves the grader's requests inside the student's (sandboxed) kernel.

The grader sends this file's source and wire.py's into the kernel in one silent execute request (client.py's
bootstrap), which makes them the modules ``_grading_rpc.kernel_side`` and ``_grading_rpc.wire`` there and calls
:func:`start`: the kernel connects to the grader's Unix socket and a daemon thread serves one request frame at a
time (wire.py). Tests import it in-process and drive :class:`Server` or :func:`serve_connection` directly.

Everything here runs where student code can reach it, so the grader trusts none of it: student code may replace
any function of this module and forge any reply. That only changes the answers about its own code.

Shared arrays: every ndarray that crosses the boundary is tracked for a session (one test cell). After each call
the reply carries the tracked arrays whose contents changed (``sync``), so the grader sees in-place changes student
code made to its inputs, also to arrays cached by an earlier call; a tracked array returned again keeps its key.
Unchanged arrays are not sent again: the comparison with the snapshot is bit for bit and in place.
"""
from __future__ import annotations

import contextvars
import socket
import sys
import threading
from typing import Any, Callable

import numpy as np

from . import wire

_lock = threading.Lock()
_busy: set[int] = set()             # idents of serving threads inside a call (what interrupt() may interrupt)
_main_context: list = [None]        # the kernel main thread's context variables after its last execution


class _ResultEncoder(wire.TreeEncoder):
    """Results as nodes: plain data by value (arrays tracked), anything else as a handle."""

    max_depth = wire.RESULT_MAX_DEPTH

    def __init__(self, server: Server, out: dict):
        self.server, self.out = server, out

    def too_deep(self) -> dict:
        raise ValueError("result nested too deeply")

    def scalar(self, v: np.generic) -> dict:
        if not (wire.plain_dtype(v.dtype) and type(v) is v.dtype.type):
            return self.server.handle_of(v)
        key = self.server.new_key("s")
        self.out[key] = np.asarray(v)
        return {"t": "npscalar", "k": key}

    def array(self, v: np.ndarray) -> dict:
        if not wire.plain_array(v):
            return self.server.handle_of(v)
        key = self.server.by_id.get(id(v))
        if key is None or self.server.tracked.get(key, [None])[0] is not v:
            key = self.server.new_key("k")
            self.server.track(key, v)
        self.out[key] = v
        return {"t": "arr", "k": key}

    def mapping(self, v: dict, depth: int) -> dict:
        if not all(type(k) in wire.DICT_KEY_TYPES for k in v):
            return self.server.handle_of(v)
        return super().mapping(v, depth)

    def other(self, v: Any) -> dict:
        return self.server.handle_of(v)


def _class_level(obj: Any, name: str) -> bool:
    """True if `name` comes from obj's class (a method), not from the instance."""
    try:
        if name in vars(obj):
            return False
    except TypeError:
        pass
    return any(name in vars(k) for k in type(obj).__mro__)


class Server:
    """Answers request payloads for one namespace (the kernel's globals): ``handle(payload) -> reply payload``."""

    def __init__(self, ns: dict, max_reply: int = wire.MAX_REPLY_BYTES):
        self.ns = ns
        self.max_reply = max_reply
        self.objects: dict[int, Any] = {}
        self.tracked: dict[str, list] = {}      # key -> [array, snapshot]
        self.by_id: dict[int, str] = {}         # id(array) -> key
        self.counter = 0

    # ---------------------------------------------------------------- state

    def new_key(self, prefix: str) -> str:
        self.counter += 1
        return prefix + str(self.counter)

    def track(self, key: str, arr: np.ndarray, snapshot: np.ndarray | None = None) -> None:
        """Track `arr` under `key`; `snapshot`: its contents as last synced, never written (default: a copy)."""
        old = self.tracked.get(key)
        if old is not None:
            self.by_id.pop(id(old[0]), None)
        self.tracked[key] = [arr, arr.copy() if snapshot is None else snapshot]
        self.by_id[id(arr)] = key

    def handle_of(self, v: Any) -> dict:
        self.counter += 1
        self.objects[self.counter] = v
        return {"t": "obj", "id": self.counter, "type": type(v).__name__[:wire.MAX_TYPE_NAME],
                "callable": callable(v), "tid": "%x" % id(type(v))}

    def reset(self) -> None:
        self.objects.clear()
        self.tracked.clear()
        self.by_id.clear()

    def sync(self, out: dict) -> list[str]:
        """Keys of tracked arrays whose contents changed since last synced; their data goes into `out`."""
        changed = []
        for key, entry in list(self.tracked.items()):
            if key in out:
                out[key] = entry[1] = entry[0].copy()     # the copy is sent: student code runs on meanwhile
            elif not (type(entry[0]) is np.ndarray and wire.same_array(entry[0], entry[1])):
                out[key] = entry[1] = entry[0].copy()
                changed.append(key)
        return changed

    # ---------------------------------------------------------------- requests

    def resolve_ref(self, ref: dict) -> Any:
        kind = ref["kind"]
        if kind == "name":
            if ref["name"] not in self.ns:
                raise NameError("name %r is not defined" % ref["name"])
            return self.ns[ref["name"]]
        if kind == "obj":
            try:
                return self.objects[ref["id"]]
            except KeyError:
                raise LookupError("stale remote handle (the object was released)") from None
        if kind == "attr":
            return getattr(self.resolve_ref(ref["base"]), ref["attr"])
        raise ValueError("bad reference")

    def decode(self, node: dict, arrays: dict) -> Any:
        t = node["t"]
        if t == "none":
            return None
        if t in wire.SCALAR_TAGS.values():
            return node["v"]
        if t == "arr":
            return self.tracked[node["k"]][0]
        if t == "npscalar":
            return arrays[node["k"]][()]
        if t in ("tuple", "list"):
            items = [self.decode(x, arrays) for x in node["v"]]
            return tuple(items) if t == "tuple" else items
        if t == "dict":
            return {self.decode(k, arrays): self.decode(v, arrays) for k, v in node["v"]}
        if t == "ref":
            return self.resolve_ref(node["r"])
        raise ValueError("bad request node %r" % (t,))

    def receive(self, payload: bytes) -> tuple[dict, dict]:
        """The request header and its arrays; drops released arrays and applies the grader's uploads."""
        header, members = wire.split_payload(payload, wire.MAX_REQUEST_BYTES)
        for key in header.get("drop", ()):
            entry = self.tracked.pop(key, None)
            if entry is not None:
                self.by_id.pop(id(entry[0]), None)
        # Read-only views of the request's bytes, which nothing writes: an upload's view is its snapshot.
        arrays = {key: wire.read_npy(data) for key, data in members}
        for key in header.get("upload", ()):
            new, entry = arrays[key], self.tracked.get(key)
            if (entry is not None and entry[0].shape == new.shape and entry[0].dtype == new.dtype
                    and entry[0].flags.writeable):
                np.copyto(entry[0], new)
                entry[1] = new
            else:
                self.track(key, np.array(new), new)      # a fresh, writable array
        return header, arrays

    def resolve_names(self, names: list, out: dict) -> dict:
        table = {}
        for name in names:
            if name not in self.ns:
                table[name] = {"t": "missing"}
                continue
            v = self.ns[name]
            if type(v) is type(sys):
                table[name] = {"t": "module", "name": str(getattr(v, "__name__", ""))[:200]}
                continue
            try:
                probe: dict = {}
                table[name] = _ResultEncoder(self, probe).encode(v)
                if table[name]["t"] == "obj":
                    self.objects.pop(table[name]["id"], None)
                    table[name] = {"t": "remote"}
                else:
                    out.update(probe)
            except Exception:
                table[name] = {"t": "remote"}
        return table

    def dispatch(self, payload: bytes) -> tuple[dict, dict]:
        req, arrays = self.receive(payload)
        op, out = req["op"], {}
        if op == "resolve":
            return {"ok": True, "names": self.resolve_names(req["names"], out), "sync": self.sync(out)}, out
        if op == "reset":
            self.reset()
            return {"ok": True, "value": {"t": "none"}, "sync": self.sync(out)}, out
        target = self.resolve_ref(req["ref"])
        if op == "call":
            value = target(*self.decode(req["args"], arrays), **self.decode(req["kwargs"], arrays))
        elif op == "getattr":
            value = getattr(target, req["attr"])
            if callable(value) and not (wire.plain_array(value) or type(value) in (tuple, list, dict)):
                try:
                    cls = bool(_class_level(target, req["attr"]))
                except Exception:
                    cls = False
                return {"ok": True, "value": {"t": "callable", "cls": cls}, "sync": self.sync(out)}, out
        elif op == "setattr":
            setattr(target, req["attr"], self.decode(req["value"], arrays))
            value = None
        else:
            raise ValueError("unknown operation")
        node = _ResultEncoder(self, out).encode(value)
        return {"ok": True, "value": node, "sync": self.sync(out)}, out

    def failure(self, e: BaseException) -> tuple[dict, dict]:
        try:
            msg = str(e)
        except BaseException:
            msg = "<unprintable exception>"
        header, out = {"ok": False, "etype": type(e).__name__, "msg": msg[:wire.MAX_MESSAGE]}, {}
        try:
            header["sync"] = self.sync(out)
        except BaseException:
            header["sync"], out = [], {}
        return header, out

    def handle(self, payload: bytes) -> bytes:
        try:
            header, out = self.dispatch(payload)
        except BaseException as e:      # student code may raise anything, SystemExit and KeyboardInterrupt too
            header, out = self.failure(e)
        return encode_reply(header, out, self.max_reply)


def encode_reply(header: dict, arrays: dict, limit: int) -> list:
    """The reply payload as buffers (wire.payload_parts), or a "too large" error when it would exceed what the
    grader accepts."""
    parts = wire.payload_parts(header, arrays)
    size = sum(len(p) for p in parts)
    if size > limit:
        return wire.payload_parts({"ok": False, "too_large": size, "sync": []}, {})
    return parts


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
