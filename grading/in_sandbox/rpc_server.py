"""The kernel side of the RPC: answers the grader's requests inside the student's (sandboxed) kernel.

rpc_serving.py starts it in the kernel (the grader's bootstrap calls its ``start``) and serves one request frame at a
time (wire.py) from a daemon thread; :class:`Server` turns a request payload into a reply payload, dispatching on the
request's op code (wire.OP_*) through :data:`OPERATIONS`. Tests import it in-process and drive :class:`Server`
directly.

Everything here runs where student code can reach it, so the grader trusts none of it: student code may replace
any function of this module and forge any reply. That only changes the answers about its own code.

Shared arrays: every ndarray that crosses the boundary is tracked for a session (one test cell). After each call
the reply carries the tracked arrays whose contents changed (``sync``), so the grader sees in-place changes student
code made to its inputs, also to arrays cached by an earlier call; a tracked array returned again keeps its key.
Unchanged arrays are not sent again: the comparison with the snapshot is bit for bit and in place.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np

from . import wire

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
            if wire.sync_in_place(entry[0] if entry is not None else None, new):
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

    # ---------------------------------------------------------------- operations (OPERATIONS maps op codes to them)

    def call(self, req: dict, arrays: dict, out: dict) -> dict:
        target = self.resolve_ref(req["ref"])
        value = target(*self.decode(req["args"], arrays), **self.decode(req["kwargs"], arrays))
        return {"value": _ResultEncoder(self, out).encode(value)}

    def get_attribute(self, req: dict, arrays: dict, out: dict) -> dict:
        """A plain value or a handle; for a callable only whether it is a class-level method (the grader calls it
        through a reference, so that the call itself is one RPC)."""
        target = self.resolve_ref(req["ref"])
        value = getattr(target, req["attr"])
        if callable(value) and not (wire.plain_array(value) or type(value) in (tuple, list, dict)):
            try:
                cls = bool(_class_level(target, req["attr"]))
            except Exception:
                cls = False
            return {"value": {"t": "callable", "cls": cls}}
        return {"value": _ResultEncoder(self, out).encode(value)}

    def set_attribute(self, req: dict, arrays: dict, out: dict) -> dict:
        setattr(self.resolve_ref(req["ref"]), req["attr"], self.decode(req["value"], arrays))
        return {"value": {"t": "none"}}

    def resolve(self, req: dict, arrays: dict, out: dict) -> dict:
        return {"names": self.resolve_names(req["names"], out)}

    def forget(self, req: dict, arrays: dict, out: dict) -> dict:
        self.reset()
        return {"value": {"t": "none"}}

    def dispatch(self, payload: bytes) -> tuple[dict, dict]:
        req, arrays = self.receive(payload)
        operation = OPERATIONS.get(req["op"])
        if operation is None:
            raise ValueError("unknown operation")
        out: dict = {}
        header = operation(self, req, arrays, out)
        return dict(header, ok=True, sync=self.sync(out)), out

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


OPERATIONS: dict[str, Callable[[Server, dict, dict, dict], dict]] = {
    wire.OP_CALL: Server.call, wire.OP_GETATTR: Server.get_attribute, wire.OP_SETATTR: Server.set_attribute,
    wire.OP_RESOLVE: Server.resolve, wire.OP_RESET: Server.forget}


def encode_reply(header: dict, arrays: dict, limit: int) -> list:
    """The reply payload as buffers (wire.payload_parts), or a "too large" error when it would exceed what the
    grader accepts."""
    parts = wire.payload_parts(header, arrays)
    size = sum(len(p) for p in parts)
    if size > limit:
        return wire.payload_parts({"ok": False, "too_large": size, "sync": []}, {})
    return parts


