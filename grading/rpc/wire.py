"""The wire format of the RPC, shared by the grader (client.py, decode.py) and the kernel side (kernel_side.py).

This file runs on both sides of the trust boundary: the grader imports it, and sends its source into the sandbox
with kernel_side.py. It needs nothing but the standard library and numpy.

Frame: ``FRAME_LEN`` (bytes that follow), then the payload. Payload: ``HEADER_LEN`` (bytes of the header), a JSON
header, then the ``.npy`` members (numpy's own format, written and read with ``allow_pickle=False``) in the order
the header's ``"npy"`` table lists them as ``[key, number of bytes]``. One request frame goes to the kernel, one
reply frame comes back, on one Unix socket.

Values travel as a tree of JSON nodes ``{"t": tag, ...}``: ``none``, ``bool``/``int``/``float``/``str`` with ``v``,
``tuple``/``list`` with ``v`` (a list of nodes), ``dict`` with ``v`` (a list of ``[key node, value node]``),
``arr``/``npscalar`` with ``k`` (the key of an ``.npy`` member), and per side: ``ref`` (grader to kernel, a
reference to a kernel object) and ``obj`` (kernel to grader, a handle).
"""
from __future__ import annotations

import io
import json
import re
import struct
from typing import Any

import numpy as np

FRAME_LEN = struct.Struct("!Q")          # bytes of the payload that follows
HEADER_LEN = struct.Struct("!I")         # bytes of the JSON header that follows

# Caps. The grader refuses a reply frame over MAX_REPLY_BYTES (issue 10: sized to gradients, which are kilobytes;
# the kernel side answers "too large" instead of sending one), and a JSON header over MAX_HEADER_BYTES.
MAX_REPLY_BYTES = 16 << 20
MAX_HEADER_BYTES = 16 << 20
MAX_REQUEST_BYTES = 256 << 20            # what the kernel side reads from the (trusted) grader
MAX_MEMBERS = 100_000                    # .npy members per frame
MAX_NODES = 1_000_000                    # JSON nodes the grader decodes per reply
MAX_NPY_HEADER = 10_000                  # bytes of one .npy header
MAX_NDIM = 32
MAX_DEPTH = 64                           # nesting the grader sends and accepts
RESULT_MAX_DEPTH = 48                    # nesting the kernel side sends (below MAX_DEPTH: always accepted)
MAX_MESSAGE = 4000                       # characters of an exception message
MAX_TYPE_NAME = 100

PLAIN_KINDS = "biufc"                    # bool, int, uint, float, complex: nothing numpy would unpickle
KEY = re.compile(r"^[gks]\d{1,12}$")     # g: the grader's arrays, k: the kernel's, s: numpy scalars
SCALAR_TAGS = {bool: "bool", int: "int", float: "float", str: "str"}
SCALAR_TYPES = {tag: tp for tp, tag in SCALAR_TAGS.items()}
DICT_KEY_TYPES = (str, int, float, bool, type(None))


def plain_dtype(dtype: np.dtype) -> bool:
    return dtype.kind in PLAIN_KINDS and dtype.fields is None and dtype.subdtype is None and not dtype.hasobject


def plain_array(v: Any) -> bool:
    """An exact np.ndarray (no subclass) of a plain dtype."""
    return type(v) is np.ndarray and plain_dtype(v.dtype)


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


class TreeEncoder:
    """Encodes plain values as nodes; each side says what becomes of arrays, numpy scalars, dicts with other keys
    and anything else."""

    max_depth = MAX_DEPTH

    def encode(self, v: Any, depth: int = 0) -> dict:
        if depth > self.max_depth:
            return self.too_deep()
        tv = type(v)
        if v is None:
            return {"t": "none"}
        if tv in SCALAR_TAGS:
            return {"t": SCALAR_TAGS[tv], "v": v}
        if isinstance(v, np.generic):
            return self.scalar(v)
        if isinstance(v, np.ndarray):
            return self.array(v)
        if tv is tuple or tv is list:
            return {"t": tv.__name__, "v": [self.encode(x, depth + 1) for x in v]}
        if tv is dict:
            return self.mapping(v, depth)
        return self.other(v)

    def mapping(self, v: dict, depth: int) -> dict:
        return {"t": "dict", "v": [[self.encode(k, depth + 1), self.encode(x, depth + 1)] for k, x in v.items()]}

    def too_deep(self) -> dict:
        raise NotImplementedError

    def scalar(self, v: np.generic) -> dict:
        raise NotImplementedError

    def array(self, v: np.ndarray) -> dict:
        raise NotImplementedError

    def other(self, v: Any) -> dict:
        raise NotImplementedError


def encode_payload(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """The payload of one frame: `header` (JSON) with `arrays` as .npy members."""
    members = []
    for key, arr in arrays.items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
        members.append((key, buf.getvalue()))
    head = json.dumps(dict(header, npy=[[key, len(data)] for key, data in members]), allow_nan=True).encode()
    return b"".join([HEADER_LEN.pack(len(head)), head, *(data for _, data in members)])


def frame(payload: bytes) -> bytes:
    return FRAME_LEN.pack(len(payload)) + payload


def split_payload(payload: bytes, max_header: int = MAX_HEADER_BYTES,
                  max_members: int = MAX_MEMBERS) -> tuple[dict, list[tuple[str, memoryview]]]:
    """The header and the (key, bytes) of each .npy member; ValueError("why") if the layout is inconsistent."""
    view = memoryview(payload)
    if len(view) < HEADER_LEN.size:
        raise ValueError("frame too short")
    (size,) = HEADER_LEN.unpack_from(view)
    end = HEADER_LEN.size + size
    if size > max_header or end > len(view):
        raise ValueError("header too large")
    try:
        header = json.loads(bytes(view[HEADER_LEN.size:end]))
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise ValueError("JSON") from None
    if type(header) is not dict:
        raise ValueError("envelope")
    table = header.pop("npy", None)
    if type(table) is not list or len(table) > max_members:
        raise ValueError("member table")
    members, seen = [], set()
    for entry in table:
        if (type(entry) is not list or len(entry) != 2 or type(entry[0]) is not str or not KEY.match(entry[0])
                or entry[0] in seen or type(entry[1]) is not int or not 0 <= entry[1] <= len(view) - end):
            raise ValueError("member table")
        seen.add(entry[0])
        members.append((entry[0], view[end:end + entry[1]]))
        end += entry[1]
    if end != len(view):
        raise ValueError("members do not fill the frame")
    return header, members
