"""The wire format of the RPC, shared by the grader (grading/rpc/) and the kernel side (rpc_server.py).

This file runs on both sides of the trust boundary: the grader imports it, and ships it into the sandbox with the
rest of this package. It needs nothing but the standard library and numpy.

Frame: ``FRAME_LEN`` (bytes that follow), then the payload. Payload: ``HEADER_LEN`` (bytes of the header), a JSON
header, then the ``.npy`` members (numpy's own format, written and read with ``allow_pickle=False``) in the order
the header's ``"npy"`` table lists them as ``[key, number of bytes]``. One request frame goes to the kernel, one
reply frame comes back, on one Unix socket. A frame is sent as the buffers it is made of (``payload_parts``,
``send_all``: the arrays' own memory, never joined), and a member is read as a view of the received bytes
(``npy_view``): numpy's .npy bytes, without numpy's copies.

Values travel as a tree of JSON nodes ``{"t": tag, ...}``: ``none``, ``bool``/``int``/``float``/``str`` with ``v``,
``tuple``/``list`` with ``v`` (a list of nodes), ``dict`` with ``v`` (a list of ``[key node, value node]``),
``arr``/``npscalar`` with ``k`` (the key of an ``.npy`` member), and per side: ``ref`` (grader to kernel, a
reference to a kernel object) and ``obj`` (kernel to grader, a handle).
"""
from __future__ import annotations

import functools
import io
import json
import math
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
SOCKET_BUFFER = 4 << 20                  # SO_SNDBUF/SO_RCVBUF asked for on both ends (the system may cap it)
MAX_MEMBERS = 100_000                    # .npy members per frame
MAX_NODES = 1_000_000                    # JSON nodes the grader decodes per reply
MAX_NPY_HEADER = 10_000                  # bytes of one .npy header
MAX_NDIM = 32
MAX_DEPTH = 64                           # nesting the grader sends and accepts
RESULT_MAX_DEPTH = 48                    # nesting the kernel side sends (below MAX_DEPTH: always accepted)
MAX_MESSAGE = 4000                       # characters of an exception message
MAX_TYPE_NAME = 100

PLAIN_KINDS = "biufc"                    # bool, int, uint, float, complex: nothing numpy would unpickle
# Operations: the "op" of a request header. The kernel side dispatches on them through a table (rpc_server.py).
OP_CALL = "call"                         # call the referenced object with args and kwargs
OP_GETATTR = "getattr"                   # an attribute of the referenced object
OP_SETATTR = "setattr"                   # set an attribute of the referenced object
OP_RESOLVE = "resolve"                   # classify global names of the kernel
OP_RESET = "reset"                       # forget handles and tracked arrays (between test cells)

KEY = re.compile(r"^[gks]\d{1,12}$")     # g: the grader's arrays, k: the kernel's, s: numpy scalars
SCALAR_TAGS = {bool: "bool", int: "int", float: "float", str: "str"}
SCALAR_TYPES = {tag: tp for tp, tag in SCALAR_TAGS.items()}
DICT_KEY_TYPES = (str, int, float, bool, type(None))


def plain_dtype(dtype: np.dtype) -> bool:
    return dtype.kind in PLAIN_KINDS and dtype.fields is None and dtype.subdtype is None and not dtype.hasobject


def plain_array(v: Any) -> bool:
    """An exact np.ndarray (no subclass) of a plain dtype."""
    return type(v) is np.ndarray and plain_dtype(v.dtype)


SMALL_ARRAY = 1 << 15                    # bytes: below, comparing copies is quicker than comparing views
_UINT_OF_SIZE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape, dtype and bits (NaN payloads and signed zeros included). Compares unsigned-integer views in
    place: ``tobytes()`` would copy both arrays first (7 ms against 0.3 ms for 4 MB)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    uint = _UINT_OF_SIZE.get(a.dtype.itemsize)
    if uint is None or a.ndim == 0 or a.nbytes <= SMALL_ARRAY:
        return a.tobytes() == b.tobytes()
    return bool(np.array_equal(a.view(uint), b.view(uint)))


def sync_in_place(live: np.ndarray | None, new: np.ndarray) -> bool:
    """The one array sync of both sides: write `new` into the tracked array `live` when it can follow in place (same
    shape and dtype, writable); False when it cannot (gone, resized or retyped), and the caller decides."""
    if live is None or live.shape != new.shape or live.dtype != new.dtype or not live.flags.writeable:
        return False
    np.copyto(live, new)
    return True


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


def npy_parts(arr: np.ndarray) -> tuple[bytes, memoryview]:
    """An array as a .npy member, as ``np.lib.format.write_array`` writes it (Fortran order kept): its header,
    and its data as a view of the array's own memory, so a contiguous array is never copied to be sent."""
    arr = np.asarray(arr)
    if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        arr = arr.copy(order="C")
    fortran_order = arr.flags.f_contiguous and not arr.flags.c_contiguous
    data = arr.T if fortran_order else arr
    return _npy_header_of(arr.dtype.str, fortran_order, arr.shape), memoryview(data.reshape(-1).view(np.uint8))


@functools.lru_cache(maxsize=1024)
def _npy_header_of(descr: str, fortran_order: bool, shape: tuple) -> bytes:
    """The .npy header numpy writes for such an array (the same few shapes recur on every call)."""
    fields = {"descr": descr, "fortran_order": fortran_order, "shape": shape}
    head = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(head, fields)
    except ValueError:          # a header over 64 KiB (a very long shape) needs version 2.0
        head = io.BytesIO()
        np.lib.format.write_array_header_2_0(head, fields)
    return head.getvalue()


def payload_parts(header: dict, arrays: dict[str, np.ndarray]) -> list[bytes | memoryview]:
    """The payload of one frame as buffers to send in a row: `header` (JSON) with `arrays` as .npy members."""
    members = [(key, npy_parts(arr)) for key, arr in arrays.items()]
    head = json.dumps(dict(header, npy=[[key, len(npy) + len(data)] for key, (npy, data) in members]),
                      allow_nan=True).encode()
    parts: list[bytes | memoryview] = [HEADER_LEN.pack(len(head)) + head]
    for _, (npy, data) in members:
        parts += [npy, data] if len(data) else [npy]
    return parts


def encode_payload(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """The payload of one frame as one bytes object."""
    return b"".join(payload_parts(header, arrays))


def frame(payload: bytes) -> bytes:
    return FRAME_LEN.pack(len(payload)) + payload


def framed(parts: list) -> list:
    """A frame's buffers: its length, then the payload's buffers."""
    return [FRAME_LEN.pack(sum(len(p) for p in parts)), *parts]


MAX_SEND_BUFFERS = 512                   # buffers per sendmsg (the system's IOV_MAX is 1024)


def sent_past(parts: list, sent: int) -> list:
    """What is left of `parts` once `sent` bytes of them are out (sendmsg may take only some)."""
    i = 0
    while i < len(parts) and sent >= len(parts[i]):
        sent -= len(parts[i])
        i += 1
    rest = parts[i:]
    if rest and sent:
        rest[0] = memoryview(rest[0])[sent:]
    return rest


def send_all(sock: Any, parts: list) -> None:
    """Send buffers in a row on a blocking socket, without joining them (gather writes)."""
    parts = [p for p in parts if len(p)]
    while parts:
        parts = sent_past(parts, sock.sendmsg(parts[:MAX_SEND_BUFFERS]))


NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0,
                      (3, 0): np.lib.format.read_array_header_2_0}


_NPY_PREFIX = {(1, 0): struct.Struct("<H"), (2, 0): struct.Struct("<I"), (3, 0): struct.Struct("<I")}
_parsed_headers: dict[bytes, tuple] = {}     # exact header bytes -> what numpy parsed them as
MAX_PARSED_HEADERS = 1024


def npy_header(data: bytes | memoryview) -> tuple[tuple, bool, np.dtype, int] | None:
    """(shape, fortran_order, dtype, header length) of a .npy member, read from its first bytes only; None for
    an unknown format version. numpy raises ValueError (or worse, on garbage) for a malformed header. numpy's
    parse (a literal_eval, 70 us) is remembered by the header's exact bytes: the same few recur on every call."""
    view = memoryview(data)
    prefix = _NPY_PREFIX.get(tuple(view[6:8])) if bytes(view[:6]) == b"\x93NUMPY" else None
    if prefix is not None and len(view) >= 8 + prefix.size:
        size = 8 + prefix.size + prefix.unpack_from(view, 8)[0]
        key = bytes(view[:size]) if size <= MAX_NPY_HEADER + 16 else None
        if key in _parsed_headers:
            return _parsed_headers[key]
    f = io.BytesIO(bytes(view[:MAX_NPY_HEADER + 16]))
    reader = NPY_HEADER_READERS.get(np.lib.format.read_magic(f))
    if reader is None:
        return None
    shape, fortran_order, dtype = reader(f, max_header_size=MAX_NPY_HEADER)
    found = shape, fortran_order, dtype, f.tell()
    if prefix is not None and key is not None and f.tell() == len(key):
        if len(_parsed_headers) >= MAX_PARSED_HEADERS:
            _parsed_headers.clear()
        _parsed_headers[key] = found
    return found


def npy_view(data: bytes | memoryview, shape: tuple, fortran_order: bool, dtype: np.dtype,
             offset: int) -> np.ndarray:
    """The array of a .npy member whose header is `offset` bytes long, as a read-only view of `data` (what
    ``np.lib.format.read_array`` gives, without copying the data: the caller copies what it keeps)."""
    arr = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset)
    arr = arr.reshape(shape[::-1]).transpose() if fortran_order else arr.reshape(shape)
    arr.flags.writeable = False
    return arr


def read_npy(data: bytes | memoryview) -> np.ndarray:
    """A .npy member from the trusted side (plain dtypes only), as a read-only view of `data`."""
    found = npy_header(data)
    if found is None or not plain_dtype(found[2]):
        raise ValueError("unsupported .npy member")
    return npy_view(data, *found)


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
