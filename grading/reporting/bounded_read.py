"""Reading a student-controlled JSON file (a submitted or autograded notebook) in the grader's own process,
within limits decided before any parsing.

Python's ``json`` and nbformat's reader recurse once per level of nesting: a notebook nested 100,000 deep raises
``RecursionError`` (not a ``ValueError``), which stopped `make report` for the whole class. Here the file's size
is checked with ``lstat`` first (``max_bytes``) and its nesting depth counted in linear time, in C (numpy, over
fixed-size chunks, strings left out), before it is parsed; anything over a limit is a ``ValueError`` whose
message is one line for the report (``NotebookTooLarge``), so each reader's existing ``except ValueError``
costs that student one problem line and never the class.
"""
import json
import os
import re
import stat

import numpy as np

MAX_BYTES = 128 << 20     # a notebook over this is not read (the intake's cap is 100 MB)
MAX_DEPTH = 100           # honest notebooks nest about 10 deep; Python's recursion limit is 1000
CHUNK = 8 << 20
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_OPEN = np.zeros(256, np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


class NotebookTooLarge(ValueError):
    """A file over the size or nesting limit: not parsed."""


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of JSON arrays and objects in `raw` (brackets inside strings do not count)."""
    skeleton = _STRING.sub(b'""', raw)
    depth = deepest = 0
    for start in range(0, len(skeleton), CHUNK):
        steps = _OPEN[np.frombuffer(skeleton[start:start + CHUNK], np.uint8)].astype(np.int32)
        if steps.size:
            running = np.cumsum(steps) + depth
            deepest, depth = max(deepest, int(running.max())), int(running[-1])
    return deepest


def check_json_bytes(raw: bytes, name: str, max_depth: int = MAX_DEPTH) -> None:
    """NotebookTooLarge when `raw` nests deeper than `max_depth`."""
    depth = nesting_depth(raw)
    if depth > max_depth:
        raise NotebookTooLarge(f"{name} nests {depth} levels deep (over {max_depth}): not read")


def read_bytes(path, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (OSError if it is not one; NotebookTooLarge if over)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{os.path.basename(path)} is not a regular file")
        if st.st_size > max_bytes:
            raise NotebookTooLarge(f"{os.path.basename(path)} is {st.st_size >> 20} MB (over {max_bytes >> 20} MB): "
                                   "not read")
        return f.read(max_bytes + 1)


def loads(raw: bytes, name: str, max_depth: int = MAX_DEPTH):
    """json.loads of `raw` after the depth check; a RecursionError left anywhere is a ValueError too."""
    check_json_bytes(raw, name, max_depth)
    try:
        return json.loads(raw)
    except RecursionError:
        raise NotebookTooLarge(f"{name} nests too deep to read") from None


def read_json(path, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH):
    """The JSON of the file at `path`, within both limits (ValueError, OSError otherwise)."""
    return loads(read_bytes(path, max_bytes), os.path.basename(path), max_depth)


def read_notebook(path, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH):
    """nbformat.read(path, as_version=4), within both limits."""
    import nbformat
    raw = read_bytes(path, max_bytes)
    check_json_bytes(raw, os.path.basename(path), max_depth)
    try:
        return nbformat.reads(raw.decode("utf-8"), as_version=4)
    except RecursionError:
        raise NotebookTooLarge(f"{os.path.basename(path)} nests too deep to read") from None
