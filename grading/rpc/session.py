"""The RPC's session: the grader's operations on the student kernel's objects, their arguments and results, and the
grader's arrays kept in step with the kernel's. The transport (``_exchange``: request payload in, reply payload out)
is the subclass's: grading/rpc/kernel_handle.py's RemoteKernel, or a socket pair in the tests.

Arguments go out as wire.py's value nodes: plain data, the grader's arrays (tracked for the session, sent when new or
changed since the last sync) and handles of kernel objects. Replies are decoded as hostile input (decode.py): at
most ``max_result_bytes`` per reply, plain dtypes only, ``allow_pickle=False``, at most ``max_nodes`` nodes.
"""
from __future__ import annotations

import time
import weakref
from typing import Any

import numpy as np

from grading.in_sandbox import wire

from .decode import TreeDecoder, decode_reply, error_of
from .errors import RemoteError


class RemoteObject:
    """Handle to an object that stays in the student kernel. Method calls, attribute gets and sets are RPCs.

    Dunder lookups are refused locally (AttributeError) so that numpy's and Python's protocol probing
    (``__array__``, ``__len__``, ...) never reaches student code.
    """

    __slots__ = ("_rk_kernel", "_rk_ref", "_rk_type", "_rk_callable", "_rk_tid", "__weakref__")

    def __init__(self, kernel: RpcSession, ref: dict, type_name: str = "object", is_callable: bool = True,
                 tid: str | None = None):
        object.__setattr__(self, "_rk_kernel", kernel)
        object.__setattr__(self, "_rk_ref", ref)
        object.__setattr__(self, "_rk_type", type_name)
        object.__setattr__(self, "_rk_callable", is_callable)
        object.__setattr__(self, "_rk_tid", tid)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._rk_kernel.call(self._rk_ref, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._rk_kernel.getattr(self._rk_ref, name, self._rk_tid)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(f"cannot set {name} remotely")
        self._rk_kernel.setattr(self._rk_ref, name, value)

    def __repr__(self) -> str:
        return f"<remote {self._rk_type}>"


class RemoteName(RemoteObject):
    """A global name of the student kernel, looked up afresh on every operation: ``RemoteName(k, "Multiply")()``."""

    __slots__ = ()

    def __init__(self, kernel: RpcSession, name: str):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"not an identifier: {name!r}")
        super().__init__(kernel, {"kind": "name", "name": name}, name, True)

    def __repr__(self) -> str:
        return f"<remote name {self._rk_ref['name']}>"


class _Tracked:
    """A grader array in step with the kernel's, and its contents as last synced (never written: a copy, or the
    received reply array it was synced from)."""

    __slots__ = ("ref", "snapshot")

    def __init__(self, arr: np.ndarray, snapshot: np.ndarray | None = None):
        self.ref = weakref.ref(arr)
        self.snapshot = arr.copy() if snapshot is None else snapshot


def _to_send(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the C-contiguous array to send, its snapshot): one copy serves as both."""
    snapshot = arr.copy()
    return (snapshot if snapshot.ndim else np.ascontiguousarray(arr)), snapshot


class _ArgEncoder(wire.TreeEncoder):
    """Arguments as nodes: plain data, the grader's arrays (tracked, uploaded when new or changed) and handles."""

    def __init__(self, session: RpcSession, arrays: dict, upload: list):
        self.session, self.arrays, self.upload = session, arrays, upload

    def too_deep(self) -> dict:
        raise TypeError("argument nested too deeply")

    def scalar(self, v: np.generic) -> dict:
        if v.dtype.kind not in wire.PLAIN_KINDS:
            raise TypeError(f"cannot send numpy scalar of dtype {v.dtype} to the student kernel")
        key = f"s{len(self.arrays)}"
        self.arrays[key] = np.asarray(v)
        return {"t": "npscalar", "k": key}

    def array(self, v: np.ndarray) -> dict:
        if not wire.plain_dtype(v.dtype):
            raise TypeError(f"cannot send an array of dtype {v.dtype} to the student kernel")
        key = self.session.key_of(v)
        if key not in self.arrays:
            self.arrays[key], self.session.tracked[key].snapshot = _to_send(v)
            self.upload.append(key)
        return {"t": "arr", "k": key}

    def other(self, v: Any) -> dict:
        if isinstance(v, RemoteObject):
            if object.__getattribute__(v, "_rk_kernel") is not self.session:
                raise RemoteError("remote handle belongs to another (dead) kernel")
            return {"t": "ref", "r": object.__getattribute__(v, "_rk_ref")}
        raise TypeError(f"cannot send a {type(v).__name__} to the student kernel (plain data and numpy arrays only)")


class _ResultDecoder(TreeDecoder):
    """Results as values: a tracked array comes back as the grader's own object (changed in place if the kernel
    changed it), other objects as handles."""

    def __init__(self, session: RpcSession, arrays: dict):
        super().__init__(arrays, session.max_nodes)
        self.session = session

    def array(self, key: str, arr: np.ndarray) -> np.ndarray:
        entry = self.session.tracked.get(key)
        live = entry.ref() if entry is not None else None
        if live is not None and wire.same_array(live, arr):
            return live                 # the very object the grader sent (identity preserved)
        live = self.session.follow(key, arr)      # changed in the kernel: mirrored in place
        if live is not None:
            return live
        own = np.array(arr)             # own, writable copy; the received array is its snapshot
        self.session.register(key, own, arr)
        return own

    def handle(self, object_id: int, type_name: str, is_callable: bool, tid: str | None) -> RemoteObject:
        return RemoteObject(self.session, {"kind": "obj", "id": object_id}, type_name, is_callable, tid)


class RpcSession:
    """The grader's side of the RPC over some transport (``_exchange``: request payload in, reply payload out):
    operations, and the grader's arrays kept in step with the kernel's."""

    def __init__(self, max_result_bytes: int = wire.MAX_REPLY_BYTES, max_json_bytes: int = wire.MAX_HEADER_BYTES,
                 max_nodes: int = wire.MAX_NODES):
        self.max_result_bytes = int(max_result_bytes)
        self.max_json_bytes = int(max_json_bytes)
        self.max_nodes = int(max_nodes)
        self.deadline: float | None = None     # optional absolute (monotonic) budget, e.g. per test cell
        self.dead_reason: str | None = None
        self.calls = 0
        self.tracked: dict[str, _Tracked] = {}
        self._key_of: dict[int, str] = {}
        self._counter = 0
        self._methods: set[tuple[str, str]] = set()    # (type token, name) known to be class-level methods

    @property
    def alive(self) -> bool:
        return self.dead_reason is None

    def mark_dead(self, reason: str) -> None:
        if self.dead_reason is None:
            self.dead_reason = reason

    def _exchange(self, payload: bytes) -> bytes:
        raise NotImplementedError

    # ------------------------------------------------------------------ tracked arrays

    def register(self, key: str, arr: np.ndarray, snapshot: np.ndarray | None = None) -> None:
        old = self.tracked.get(key)
        if old is not None and old.ref() is not None:
            self._key_of.pop(id(old.ref()), None)
        self.tracked[key] = _Tracked(arr, snapshot)
        self._key_of[id(arr)] = key

    def key_of(self, arr: np.ndarray) -> str:
        """The key of a grader array, tracking it under a new key if it is not tracked yet."""
        key = self._key_of.get(id(arr))
        entry = self.tracked.get(key) if key else None
        if entry is None or entry.ref() is not arr:
            self._counter += 1
            key = f"g{self._counter}"
            self.register(key, arr)
        return key

    def _outgoing(self, arrays: dict, upload: list) -> list[str]:
        """Add the tracked arrays the grader changed since they were last synced to `arrays` and `upload`; forget
        the ones it released and return their keys (the kernel drops them too)."""
        dead = []
        for key, entry in list(self.tracked.items()):
            arr = entry.ref()
            if arr is None:
                dead.append(key)
                del self.tracked[key]
            elif key not in arrays and not wire.same_array(arr, entry.snapshot):
                arrays[key], entry.snapshot = _to_send(arr)
                upload.append(key)
        self._key_of = {id(e.ref()): k for k, e in self.tracked.items() if e.ref() is not None}
        return dead

    def follow(self, key: str, new: np.ndarray) -> np.ndarray | None:
        """The grader's tracked array `key`, brought in step with the kernel's `new` in place; None when it is gone
        or cannot follow (the kernel resized or retyped it)."""
        entry = self.tracked.get(key)
        live = entry.ref() if entry is not None else None
        if not wire.sync_in_place(live, new):
            return None
        entry.snapshot = new
        return live

    def _apply_sync(self, keys: list, arrays: dict) -> None:
        """Write kernel-side changes of tracked arrays into the grader's arrays, in place."""
        for key in keys:
            if key in arrays:
                self.follow(key, arrays[key])

    # ------------------------------------------------------------------ operations

    def _request(self, req: dict, arrays: dict | None = None, upload: list | None = None) -> tuple[dict, dict]:
        if not self.alive:
            raise RemoteError(f"kernel died ({self.dead_reason})")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise RemoteError("TimeoutError: time budget of this test cell exhausted")
        self.calls += 1
        arrays, upload = dict(arrays or {}), list(upload or [])
        dead = self._outgoing(arrays, upload)
        reply = self._exchange(wire.payload_parts(dict(req, upload=upload, drop=dead), arrays))
        header, out = decode_reply(reply, self.max_json_bytes)
        self._apply_sync(header.get("sync", []), out)
        if not header["ok"]:
            raise error_of(header, self.max_result_bytes)
        return header, out

    def _encoded(self, value: Any, arrays: dict, upload: list) -> dict:
        return _ArgEncoder(self, arrays, upload).encode(value)

    def call(self, ref: dict, args: tuple, kwargs: dict) -> Any:
        arrays: dict = {}
        upload: list = []
        req = {"op": wire.OP_CALL, "ref": ref, "args": self._encoded(tuple(args), arrays, upload),
               "kwargs": self._encoded(dict(kwargs), arrays, upload)}
        header, out = self._request(req, arrays, upload)
        return _ResultDecoder(self, out).decode(header.get("value"))

    def getattr(self, ref: dict, name: str, tid: str | None = None) -> Any:
        """Attribute of a remote object: a plain value, a handle, or a callable proxy. A method found on the
        object's class is remembered per class (until ``session_reset``), so calling ``obj.method(...)`` on further
        instances of that class costs one RPC instead of two; the method is still looked up in the kernel at call
        time."""
        name = str(name)
        method = RemoteObject(self, {"kind": "attr", "base": ref, "attr": name}, f"method {name}", True)
        if tid is not None and (tid, name) in self._methods:
            return method
        header, out = self._request({"op": wire.OP_GETATTR, "ref": ref, "attr": name})
        node = header.get("value")
        if isinstance(node, dict) and node.get("t") == "callable":
            if tid is not None and node.get("cls") is True:
                self._methods.add((tid, name))
            return method
        return _ResultDecoder(self, out).decode(node)

    def setattr(self, ref: dict, name: str, value: Any) -> None:
        arrays: dict = {}
        upload: list = []
        req = {"op": wire.OP_SETATTR, "ref": ref, "attr": str(name), "value": self._encoded(value, arrays, upload)}
        self._request(req, arrays, upload)

    def resolve(self, names: list[str]) -> dict[str, tuple[str, Any]]:
        """Classify kernel globals: name -> ("missing", None) | ("module", module name) | ("value", plain value)
        | ("remote", None) (an object that must stay in the kernel)."""
        header, out = self._request({"op": wire.OP_RESOLVE, "names": [str(n) for n in names]})
        table = header.get("names")
        if type(table) is not dict:
            raise RemoteError("malformed result (names)")
        decoder = _ResultDecoder(self, out)
        found: dict[str, tuple[str, Any]] = {}
        for name in names:
            node = table.get(name)
            if type(node) is not dict:
                raise RemoteError("malformed result (names)")
            t = node.get("t")
            if t in ("missing", "remote"):
                found[name] = (t, None)
            elif t == "module":
                found[name] = ("module", node["name"] if type(node.get("name")) is str else "")
            else:
                found[name] = ("value", decoder.decode(node))
        return found

    def session_reset(self) -> None:
        """Forget handles and tracked arrays on both sides (between test cells)."""
        self.tracked.clear()
        self._key_of.clear()
        self._methods.clear()
        if self.alive:
            try:
                self._request({"op": wire.OP_RESET})
            except RemoteError:
                pass

