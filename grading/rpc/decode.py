"""Untrusted decoding of what the kernel sends: every byte of a reply is hostile input to the grader.

The frame layout is checked by wire.split_payload; here the envelope (``ok``, ``sync``), each ``.npy`` member
(its header is read and checked before numpy allocates anything: version, plain dtype only, never an object array,
shape consistent with the member's size) and the value tree (depth, node count, types) are checked too. Whatever
is malformed or forged is a clean RemoteError: the grader never unpickles, and never allocates an array larger
than the member that carries it.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from grading.in_sandbox import wire
from .errors import RemoteError, printable, remote_error

def load_npy_untrusted(data: bytes | memoryview, budget: int) -> np.ndarray:
    """The array of an untrusted .npy member of at most `budget` bytes, refusing anything but a plain dtype whose
    header agrees with the member's size; a read-only view of `data` (the caller copies what it keeps)."""
    if len(data) > budget:
        raise RemoteError("result arrays too large")
    try:
        found = wire.npy_header(data)
        if found is None:
            raise RemoteError("malformed result arrays (npy version)")
        shape, fortran_order, dtype, header_len = found
        if not wire.plain_dtype(dtype):
            raise RemoteError(f"result array of unsupported dtype {dtype}")
        if len(shape) > wire.MAX_NDIM or any(type(d) is not int or d < 0 for d in shape):
            raise RemoteError("malformed result arrays (shape)")
        if header_len + math.prod(shape) * dtype.itemsize != len(data):
            raise RemoteError("malformed result arrays (size does not match header)")
        arr = wire.npy_view(data, tuple(shape), bool(fortran_order), dtype, header_len)
        if type(arr) is not np.ndarray or arr.shape != tuple(shape) or arr.dtype != dtype:
            raise RemoteError("malformed result arrays (content)")
        return arr
    except RemoteError:
        raise
    except Exception as e:      # anything numpy may raise on garbage
        raise RemoteError(f"malformed result arrays ({type(e).__name__})") from None


def decode_reply(payload: bytes, max_header: int = wire.MAX_HEADER_BYTES,
                 max_members: int = wire.MAX_MEMBERS) -> tuple[dict, dict[str, np.ndarray]]:
    """The reply header (``ok`` a bool, ``sync`` a list of keys) and its arrays."""
    try:
        header, members = wire.split_payload(payload, max_header, max_members)
    except ValueError as e:
        raise RemoteError(f"malformed result ({e})") from None
    if type(header.get("ok")) is not bool:
        raise RemoteError("malformed result (envelope)")
    sync = header.get("sync", [])
    if type(sync) is not list or not all(type(k) is str and wire.KEY.match(k) for k in sync):
        raise RemoteError("malformed result (sync)")
    budget, arrays = len(payload), {}
    for key, data in members:
        arrays[key] = load_npy_untrusted(data, budget)
        budget -= len(data)
    return header, arrays


def error_of(header: dict, limit: int) -> RemoteError:
    """The RemoteError a failed reply stands for."""
    too_large = header.get("too_large")
    if type(too_large) is int:
        return RemoteError(f"result too large ({too_large} bytes > {limit})")
    etype, msg = header.get("etype"), header.get("msg")
    etype = printable(etype[:wire.MAX_TYPE_NAME]) if type(etype) is str else "Exception"
    msg = printable(msg[:wire.MAX_MESSAGE]) if type(msg) is str else ""
    return remote_error(etype, msg)


class TreeDecoder:
    """Untrusted value nodes to values: plain data, with arrays and handles made by the subclass. At most
    `max_nodes` nodes per decoder and MAX_DEPTH levels."""

    def __init__(self, arrays: dict[str, np.ndarray], max_nodes: int = wire.MAX_NODES):
        self.arrays = arrays
        self.budget = max_nodes

    def decode(self, node: Any, depth: int = 0) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise RemoteError("malformed result (too many nodes)")
        if depth > wire.MAX_DEPTH or type(node) is not dict:
            raise RemoteError("malformed result (structure)")
        t, v = node.get("t"), node.get("v")
        if t == "none":
            return None
        if t in ("bool", "int", "str") and type(v) is wire.SCALAR_TYPES[t]:
            return v
        if t == "float" and type(v) in (float, int):
            return float(v)
        if t == "npscalar":
            arr = self._member(node)
            if arr is None or arr.shape != ():
                raise RemoteError("malformed result (scalar)")
            return arr[()]
        if t == "arr":
            arr = self._member(node)
            if arr is None:
                raise RemoteError("malformed result (missing array)")
            return self.array(node["k"], arr)
        if t in ("tuple", "list") and type(v) is list:
            items = [self.decode(x, depth + 1) for x in v]
            return tuple(items) if t == "tuple" else items
        if t == "dict" and type(v) is list:
            return self.mapping(v, depth)
        if t == "obj" and type(node.get("id")) is int:
            type_name, tid = node.get("type"), node.get("tid")
            return self.handle(node["id"], printable(type_name[:wire.MAX_TYPE_NAME]) if type(type_name) is str
                               else "object", node.get("callable") is True,
                               tid if type(tid) is str and len(tid) < 40 else None)
        raise RemoteError("malformed result (node)")

    def _member(self, node: dict) -> np.ndarray | None:
        key = node.get("k")
        return self.arrays.get(key) if type(key) is str else None

    def mapping(self, pairs: list, depth: int) -> dict:
        out = {}
        for pair in pairs:
            if type(pair) is not list or len(pair) != 2:
                raise RemoteError("malformed result (dict)")
            key = self.decode(pair[0], depth + 1)
            if type(key) not in wire.DICT_KEY_TYPES:
                raise RemoteError("malformed result (dict key)")
            out[key] = self.decode(pair[1], depth + 1)
        return out

    def array(self, key: str, arr: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def handle(self, object_id: int, type_name: str, is_callable: bool, tid: str | None) -> Any:
        raise NotImplementedError
