"""A tiny RPC that lets the trusted grader drive objects living in the (sandboxed) student kernel.

Why
---
nbgrader normally runs the autograder test cells in the student's kernel, so the verdict -- the test cell's
outputs -- is produced by a process the student controls: student code can monkeypatch ``numpy``, ``assert``
helpers, ``sys.stdout``, IPython's traceback display (``set_custom_exc``, ``showtraceback``), or simply print a
number that nbgrader then reads as partial credit. With this module the test cells run in the grader process
instead, and only *data* crosses the boundary: the grader calls the student's classes and functions remotely and
gets back plain values, which trusted code then checks.

Model
-----
``RemoteName(kernel, "Multiply")`` names a global of the student's kernel. Calling it runs ``Multiply(*args,
**kwargs)`` in the kernel. A result comes back as a tree of ``None``/``bool``/``int``/``float``/``str``/
``np.ndarray``/numpy scalars/``tuple``/``list``/``dict`` (exact types only: subclasses such as ``np.matrix`` or a
``namedtuple`` are not "plain"); anything else stays in the kernel and comes back as a :class:`RemoteObject`
handle whose method calls, attribute gets and attribute sets (of plain values) are RPCs too. Exceptions raised by
student code come back as :class:`RemoteError` carrying only ``"TypeName: message"``; nothing of the kernel's
traceback machinery is involved.

Transport
---------
For each call the grader writes the input arrays to ``_rpc_<token>_in.npz`` in the scratch directory (created with
``O_EXCL|O_NOFOLLOW``, so a student-planted symlink cannot redirect the write), then executes a short generated
snippet in the kernel -- a one-line call carrying the request as a JSON string literal, sent as the user expression
of an otherwise empty ``execute_request`` with ``silent=True, store_history=False`` (IPython's per-cell machinery
would add several milliseconds per call). The kernel-side helper (:data:`KERNEL_HELPER`, installed on first use as
module ``_grading_rpc`` by one ordinary silent execution, and again if student code removed it) performs the
operation and writes ``_rpc_<token>_out.npz`` plus ``_rpc_<token>_out.json`` (the structure of the result). The grader
talks to the kernel's shell channel through its own signed, size-capped ZeroMQ socket, separate from nbclient's. The grader waits for the
execute reply (with a per-call timeout, polling the sandbox for death), then reads both files with ``O_NOFOLLOW|
O_NONBLOCK`` (no symlinks, no FIFOs), requires regular files under size caps, parses the JSON strictly (depth,
node count, types) and loads arrays with ``np.load(allow_pickle=False)`` only after checking every ``.npy`` header
itself (stored, not compressed; numeric dtypes only; shape consistent with the member size), so a zip bomb, an
object array or a lying header cannot make the grader allocate or unpickle anything. Any malformed or forged
result is a clean :class:`RemoteError`.

The request line does not normally travel as an ``execute_request`` (about 6 ms of ipykernel overhead each): on
first use the grader binds a fresh, randomly named Unix socket in the scratch directory (``bind`` never follows or
replaces an existing path; the file is checked through an ``O_PATH|O_NOFOLLOW`` descriptor to be the grader's own
socket before it is made connectable for the kernel's UID, and unlinked once connected), and one silent execution
makes the helper connect to it and serve requests from a daemon thread: one JSON line in (capped at 16 MiB), one
line out (``ok`` or ``error <TypeName>``, the same as the user expression's status), result data in the same files.
The grader never connects to a path in the student-writable directory. The thread runs each call in a snapshot of
the main thread's context variables taken after every execution (numpy's errstate and print options, decimal's
context) and attributes its output to the grader's silent request. A call that overruns its timeout cannot be
interrupted by a signal there: the idle main thread is asked to raise ``KeyboardInterrupt`` in the serving thread,
and the kernel is killed if no answer comes within ``interrupt_grace``. If the socket cannot be set up, or student
code closes, floods or stops it, the grader switches to the ``execute_request`` path for good (the call in flight
when a connection breaks fails with a clean :class:`RemoteError`); nothing the kernel does can make a call wait
longer than its timeout plus the grace.

Shared-array semantics
----------------------
In a normal notebook the test and the student's code share array objects, and a grader can detect that student
code modified its inputs in place. To keep that observable, every ndarray that crosses the boundary is *tracked*
for the duration of a session (one test cell): after each call the kernel sends back the arrays whose contents
changed (including arrays passed in earlier calls and cached by student code, e.g. a ``backward`` that mutates
the ``x`` its ``forward`` cached), and the grader writes them into its own arrays in place; before each call the
grader uploads tracked arrays it changed itself. A tracked kernel array returned again comes back as the very same
grader object. ``session_reset()`` forgets everything (handles and tracked arrays) on both sides.

Trust
-----
The helper runs in the student's kernel and the scratch directory is writable by student code, so student code
can monkeypatch anything there (numpy, builtins, ``np.load``, the helper itself) and forge result files. That can
only change the answers that come back from *its own* code -- which it controls anyway -- never what the trusted
grader computes with them: the grader never unpickles, never evaluates kernel-provided code or reprs, and treats
every byte from the kernel as untrusted input.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import secrets
import select
import socket
import stat
import textwrap
import time
import weakref
import zipfile
from typing import Any

import numpy as np
import zmq

__all__ = ["RemoteError", "RemoteKernel", "RemoteName", "RemoteObject", "KERNEL_HELPER", "remote_error"]


class RemoteError(Exception):
    """A remote operation failed: student code raised (``"ValueError: ..."``), the kernel died or timed out, or
    its answer was malformed. The message never contains kernel-side tracebacks or source code.

    When student code raised one of a fixed set of builtin exceptions, the RemoteError is *also* an instance of
    that builtin (``except NotImplementedError``, ``hasattr`` on a remote object and similar trusted code behave
    as they would in-process); ``remote_type`` holds the kernel-side type name either way.
    """

    remote_type: str = ""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_MAPPED_EXCEPTIONS = (ArithmeticError, AssertionError, AttributeError, FloatingPointError, ImportError,
                      IndexError, KeyError, LookupError, MemoryError, ModuleNotFoundError, NameError,
                      NotImplementedError, OverflowError, RecursionError, RuntimeError, TypeError, ValueError,
                      ZeroDivisionError)
_REMOTE_CLASSES: dict[str, type] = {
    cls.__name__: type("RemoteError", (RemoteError, cls), {"__module__": __name__}) for cls in _MAPPED_EXCEPTIONS}


def remote_error(etype: str, msg: str) -> RemoteError:
    """RemoteError("etype: msg"), an instance of the builtin `etype` too when it is one of the mapped ones."""
    cls = _REMOTE_CLASSES.get(etype, RemoteError)
    err = cls(f"{etype}: {msg}" if msg else etype)
    err.remote_type = etype
    return err


# ---------------------------------------------------------------------------------------------------------------
# Kernel-side helper. Runs inside the student's kernel: it is untrusted from the grader's point of view.
# ---------------------------------------------------------------------------------------------------------------

KERNEL_HELPER = r'''
import json as _json, os as _os, sys as _sys, threading as _threading
import numpy as _np

_rpc_lock = _threading.Lock()

_objects = {}
_tracked = {}      # key -> [array, snapshot]
_by_id = {}        # id(array) -> key
_counter = [0]
_PLAIN_KINDS = "biufc"


def _new_key(prefix):
    _counter[0] += 1
    return prefix + str(_counter[0])


def _same(a, b):
    return (type(a) is _np.ndarray and a.shape == b.shape and a.dtype == b.dtype
            and a.tobytes() == b.tobytes())


def _track(key, arr):
    old = _tracked.get(key)
    if old is not None:
        _by_id.pop(id(old[0]), None)
    _tracked[key] = [arr, arr.copy()]
    _by_id[id(arr)] = key


def reset():
    _objects.clear()
    _tracked.clear()
    _by_id.clear()


def _resolve(ref, ns):
    kind = ref["kind"]
    if kind == "name":
        name = ref["name"]
        if name not in ns:
            raise NameError("name %r is not defined" % name)
        return ns[name]
    if kind == "obj":
        try:
            return _objects[ref["id"]]
        except KeyError:
            raise LookupError("stale remote handle (the object was released)") from None
    if kind == "attr":
        return getattr(_resolve(ref["base"], ns), ref["attr"])
    raise ValueError("bad reference")


def _decode(node, arrays, ns):
    t = node["t"]
    if t == "none":
        return None
    if t in ("bool", "int", "float", "str"):
        return node["v"]
    if t == "arr":
        return _tracked[node["k"]][0]
    if t == "npscalar":
        return arrays[node["k"]][()]
    if t in ("tuple", "list"):
        items = [_decode(x, arrays, ns) for x in node["v"]]
        return tuple(items) if t == "tuple" else items
    if t == "dict":
        return {_decode(k, arrays, ns): _decode(v, arrays, ns) for k, v in node["v"]}
    if t == "ref":
        return _resolve(node["r"], ns)
    raise ValueError("bad request node %r" % (t,))


def _plain_array(v):
    return (type(v) is _np.ndarray and v.dtype.kind in _PLAIN_KINDS and v.dtype.fields is None
            and v.dtype.subdtype is None)


def _encode(v, out, depth=0):
    if depth > 48:
        raise ValueError("result nested too deeply")
    tv = type(v)
    if v is None:
        return {"t": "none"}
    if tv is bool:
        return {"t": "bool", "v": v}
    if tv is int:
        return {"t": "int", "v": v}
    if tv is float:
        return {"t": "float", "v": v}
    if tv is str:
        return {"t": "str", "v": v}
    if isinstance(v, _np.generic) and v.dtype.kind in _PLAIN_KINDS and type(v) is v.dtype.type:
        key = _new_key("s")
        out[key] = _np.asarray(v)
        return {"t": "npscalar", "k": key}
    if _plain_array(v):
        key = _by_id.get(id(v))
        if key is None or _tracked.get(key, [None])[0] is not v:
            key = _new_key("k")
            _track(key, v)
        out[key] = v
        return {"t": "arr", "k": key}
    if tv is tuple or tv is list:
        return {"t": "tuple" if tv is tuple else "list", "v": [_encode(x, out, depth + 1) for x in v]}
    if tv is dict:
        items = []
        for k, x in v.items():
            if type(k) not in (str, int, float, bool) and k is not None:
                return _handle(v)
            items.append([_encode(k, out, depth + 1), _encode(x, out, depth + 1)])
        return {"t": "dict", "v": items}
    return _handle(v)


def _handle(v):
    key = _counter[0] = _counter[0] + 1
    _objects[key] = v
    return {"t": "obj", "id": key, "type": type(v).__name__[:100], "callable": callable(v),
            "tid": "%x" % id(type(v))}


def _class_level(obj, name):
    """True if `name` comes from obj's class (a method), not from the instance."""
    try:
        if name in vars(obj):
            return False
    except TypeError:
        pass
    return any(name in vars(k) for k in type(obj).__mro__)


def _write(prefix, result, arrays):
    if arrays:
        with open(prefix + "_out.npz", "wb") as f:
            _np.savez(f, **arrays)
    tmp = prefix + "_out.json.tmp"
    with open(tmp, "w") as f:
        f.write(_json.dumps(result))
    _os.replace(tmp, prefix + "_out.json")


def serve(ns, request):
    req = _json.loads(request)
    prefix = req["prefix"]
    try:
        for key in req.get("drop", ()):
            entry = _tracked.pop(key, None)
            if entry is not None:
                _by_id.pop(id(entry[0]), None)
        arrays = {}
        if req.get("in"):
            with _np.load(req["in"], allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        for key in req.get("upload", ()):
            new = arrays[key]
            entry = _tracked.get(key)
            if entry is not None and entry[0].shape == new.shape and entry[0].dtype == new.dtype:
                if entry[0].flags.writeable:
                    _np.copyto(entry[0], new)
                    entry[1] = new.copy()
                    continue
            arr = _np.array(new)        # a fresh, writable array
            _track(key, arr)
        op = req["op"]
        out = {}
        if op == "reset":
            reset()
            value = None
        elif op == "resolve":
            value = {}
            for name in req["names"]:
                if name not in ns:
                    value[name] = {"t": "missing"}
                    continue
                v = ns[name]
                if type(v) is type(_sys):
                    value[name] = {"t": "module", "name": str(getattr(v, "__name__", ""))[:200]}
                    continue
                try:
                    probe = {}
                    value[name] = _encode(v, probe)
                    if value[name]["t"] == "obj":
                        _objects.pop(value[name]["id"], None)
                        value[name] = {"t": "remote"}
                    else:
                        out.update(probe)
                except Exception:
                    value[name] = {"t": "remote"}
            _write(prefix, {"ok": True, "names": value, "sync": _sync(out)}, out)
            return
        else:
            target = _resolve(req["ref"], ns)
            if op == "call":
                args = _decode(req["args"], arrays, ns)
                kwargs = _decode(req["kwargs"], arrays, ns)
                value = target(*args, **kwargs)
            elif op == "getattr":
                value = getattr(target, req["attr"])
                if callable(value) and not (_plain_array(value) or type(value) in (tuple, list, dict)):
                    try:
                        cls = bool(_class_level(target, req["attr"]))
                    except Exception:
                        cls = False
                    _write(prefix, {"ok": True, "value": {"t": "callable", "cls": cls}, "sync": _sync(out)}, out)
                    return
            elif op == "setattr":
                setattr(target, req["attr"], _decode(req["value"], arrays, ns))
                value = None
            else:
                raise ValueError("unknown operation")
        enc = _encode(value, out)
        _write(prefix, {"ok": True, "value": enc, "sync": _sync(out)}, out)
    except BaseException as e:
        try:
            msg = str(e)
        except BaseException:
            msg = "<unprintable exception>"
        try:
            out = {}
            _write(prefix, {"ok": False, "etype": type(e).__name__, "msg": msg[:4000], "sync": _sync(out)}, out)
        except BaseException:
            _write(prefix, {"ok": False, "etype": type(e).__name__, "msg": msg[:4000], "sync": []}, {})


_MAX_LINE = 16 << 20
_rpc_state = {"busy": False, "tid": None}


def _set_async_exc(tid, exc):
    """Raise `exc` asynchronously in thread `tid` (None: clear a pending one)."""
    import ctypes
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), None if exc is None else ctypes.py_object(exc))


def interrupt():
    """Called from the main thread when a socket call timed out: KeyboardInterrupt into the busy serve thread."""
    with _rpc_lock:
        if _rpc_state["busy"] and _rpc_state["tid"] is not None:
            _set_async_exc(_rpc_state["tid"], KeyboardInterrupt)


_main_context = [None]


def _snapshot_context(*args):
    """post_execute hook (main thread): remember the main thread's context variables (numpy's errstate and print
    options, decimal's context, ...) so that calls served by the thread see what they would see in a cell."""
    import contextvars
    _main_context[0] = contextvars.copy_context()


def start(path, ns):
    """Connect to the grader's Unix socket at `path` and serve requests on it from a daemon thread."""
    import socket, threading
    _snapshot_context()
    try:
        events = get_ipython().events
        if _snapshot_context not in events.callbacks["post_execute"]:
            events.register("post_execute", _snapshot_context)
    except Exception:
        pass
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(5)
    conn.connect(path)
    conn.settimeout(None)
    serve_fn = serve
    # Output of student code run by the thread is attributed (as before, when each call was its own silent
    # request) to the grader's silent request that started it, never to whatever cell the kernel ran last.
    parents = []
    for stream in (_sys.stdout, _sys.stderr):
        try:
            var = stream._parent_header
            parents.append((var, var.get()))
        except Exception:
            pass

    def serve_in_context(line):
        for var, parent in parents:
            try:
                var.set(parent)
            except Exception:
                pass
        serve_fn(ns, line)

    def loop():
        _rpc_state["tid"] = threading.get_ident()
        buf = b""
        try:
            while True:
                while b"\n" not in buf:
                    if len(buf) > _MAX_LINE:
                        return
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\n", 1)
                try:
                    try:
                        with _rpc_lock:
                            _rpc_state["busy"] = True
                        ctx = _main_context[0]
                        if ctx is None:
                            serve_in_context(line.decode())
                        else:
                            ctx.run(serve_in_context, line.decode())
                        reply = b"ok\n"
                    finally:
                        with _rpc_lock:
                            _rpc_state["busy"] = False
                            _set_async_exc(_rpc_state["tid"], None)
                except BaseException as e:
                    try:
                        reply = ("error %s\n" % type(e).__name__[:100]).encode("ascii", "replace")
                    except BaseException:
                        reply = b"error Exception\n"
                conn.sendall(reply)
        except BaseException:
            pass
        finally:
            try:
                conn.close()
            except BaseException:
                pass

    t = threading.Thread(target=loop, name="grading-rpc", daemon=True)
    t.start()


def _sync(out):
    """Keys of tracked arrays whose contents changed since last synced; their data goes into `out`."""
    changed = []
    for key, entry in list(_tracked.items()):
        arr, snap = entry
        if key in out:
            entry[1] = arr.copy()
            continue
        if not _same(arr, snap):
            out[key] = arr
            entry[1] = arr.copy()
            changed.append(key)
    return changed
'''

HELPER_VERSION = hashlib.sha256(KERNEL_HELPER.encode()).hexdigest()[:16]

# Installs the helper as module ``_grading_rpc`` (once per kernel, or again if student code removed it).
_INSTALL = """\
def __grading_rpc_install__():
    import sys, types
    m = types.ModuleType("_grading_rpc")
    exec({source!r}, m.__dict__)
    m.serve_{version} = m.serve
    m.start_{version} = m.start
    m.interrupt_{version} = m.interrupt
    sys.modules["_grading_rpc"] = m
try:
    __grading_rpc_install__()
finally:
    del __grading_rpc_install__
"""

# Starts the socket transport (installing the helper first if it is missing): the kernel connects to the grader's
# listening Unix socket at `path` and serves requests from a daemon thread.
_START = """if getattr(__import__('sys').modules.get('_grading_rpc'), 'start_{version}', None) is None:
{install}
__import__('sys').modules['_grading_rpc'].start_{version}({path!r}, globals())
"""

# Sent (as an ordinary silent execute request, run by the idle main thread) when a socket call timed out.
_INTERRUPT = "__import__('sys').modules['_grading_rpc'].interrupt_{version}()"
_MAX_LINE = 16 << 20        # request line cap, the same as the kernel side's

# The per-call snippet: one expression, evaluated by the kernel as a user expression of an otherwise empty,
# silent execute request (IPython's cell machinery costs several ms per call and a big cell even more).
_CALL = "__import__('sys').modules['_grading_rpc'].serve_{version}(globals(), {request!r})"

# ---------------------------------------------------------------------------------------------------------------
# Grader side
# ---------------------------------------------------------------------------------------------------------------

_PLAIN_KINDS = "biufc"
_NPY_NAME = re.compile(r"^([gks]\d{1,12})\.npy$")
_KEY = re.compile(r"^[gks]\d{1,12}$")
_MAX_DEPTH = 64


def _read_untrusted(path: str, limit: int) -> bytes | None:
    """Contents of a regular file (no symlink, FIFO or device) of at most `limit` bytes; None if absent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RemoteError(f"result file unreadable ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RemoteError("result file is not a regular file")
        if st.st_size > limit:
            raise RemoteError(f"result too large ({st.st_size} bytes > {limit})")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise RemoteError(f"result too large (> {limit} bytes)")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def load_npz_untrusted(data: bytes, limit: int, max_members: int = 100000) -> dict[str, np.ndarray]:
    """Arrays of an untrusted .npz, refusing anything but stored numeric .npy members of consistent size."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as e:
        raise RemoteError(f"malformed result arrays ({type(e).__name__})") from None
    if len(infos) > max_members:
        raise RemoteError("malformed result arrays (too many members)")
    budget, expected = limit, {}
    try:
        for info in infos:
            m = _NPY_NAME.match(info.filename)
            if not m or m.group(1) in expected:
                raise RemoteError("malformed result arrays (unexpected member)")
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                raise RemoteError("malformed result arrays (compressed or encrypted member)")
            if info.file_size > budget:
                raise RemoteError("result arrays too large")
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=10000)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=10000)
                else:
                    raise RemoteError("malformed result arrays (npy version)")
                header_len = f.tell()
            if (dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None
                    or dtype.kind not in _PLAIN_KINDS):
                raise RemoteError(f"result array of unsupported dtype {dtype}")
            if len(shape) > 32 or any(type(d) is not int or d < 0 for d in shape):
                raise RemoteError("malformed result arrays (shape)")
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > budget or header_len + nbytes != info.file_size:
                raise RemoteError("malformed result arrays (size does not match header)")
            budget -= info.file_size
            expected[m.group(1)] = (tuple(shape), dtype)
        arrays = {}
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            for key, (shape, dtype) in expected.items():
                arr = z[key]
                if type(arr) is not np.ndarray or arr.shape != shape or arr.dtype != dtype:
                    raise RemoteError("malformed result arrays (content)")
                arrays[key] = arr
        return arrays
    except RemoteError:
        raise
    except Exception as e:      # anything numpy/zipfile may raise on garbage
        raise RemoteError(f"malformed result arrays ({type(e).__name__})") from None


class RemoteObject:
    """Handle to an object that stays in the student kernel. Method calls, attribute gets and sets are RPCs.

    Dunder lookups are refused locally (AttributeError) so that numpy's and Python's protocol probing
    (``__array__``, ``__len__``, ...) never reaches student code.
    """

    __slots__ = ("_rk_kernel", "_rk_ref", "_rk_type", "_rk_callable", "_rk_tid", "__weakref__")

    def __init__(self, kernel: RemoteKernel, ref: dict, type_name: str = "object", is_callable: bool = True,
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

    def __init__(self, kernel: RemoteKernel, name: str):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"not an identifier: {name!r}")
        super().__init__(kernel, {"kind": "name", "name": name}, name, True)

    def __repr__(self) -> str:
        return f"<remote name {self._rk_ref['name']}>"


class _Tracked:
    __slots__ = ("ref", "snapshot")

    def __init__(self, arr: np.ndarray):
        self.ref = weakref.ref(arr)
        self.snapshot = arr.copy()


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


class RemoteKernel:
    """RPC endpoint for one running student kernel.

    km: a started kernel manager; :class:`grading.sandbox.kernel_manager.SandboxedKernelManager` (its synchronous
        ``sandbox_exit_status``/``interrupt_now``/``kill_now``/``describe_exit`` are used for liveness, interrupts
        and kills; other managers fall back to polling their provisioner's process).
    scratch_dir: the directory shared with the kernel (same absolute path on both sides).
    timeout: seconds per call; on expiry the kernel is interrupted, and killed if it does not answer within
        ``interrupt_grace`` seconds (later calls then fail fast with "kernel died").
    """

    def __init__(self, km: Any, scratch_dir: str, timeout: float = 30.0, interrupt_grace: float = 3.0,
                 max_result_bytes: int = 256 << 20, max_json_bytes: int = 16 << 20, max_nodes: int = 1_000_000):
        self.km = km
        self.scratch_dir = scratch_dir
        self.timeout = float(timeout)
        self.interrupt_grace = float(interrupt_grace)
        self.max_result_bytes = int(max_result_bytes)
        self.max_json_bytes = int(max_json_bytes)
        self.max_nodes = int(max_nodes)
        self.deadline: float | None = None     # optional absolute (monotonic) budget, e.g. per test cell
        self.dead_reason: str | None = None
        self.calls = 0
        self._methods: set[tuple[str, str]] = set()    # (type token, name) known to be class-level methods
        self._tracked: dict[str, _Tracked] = {}
        self._key_of: dict[int, str] = {}
        self._counter = 0
        # A plain synchronous DEALER socket on the kernel's shell channel, signed with the kernel's session key.
        # (jupyter_client's BlockingKernelClient hops through an asyncio runner thread on every call when used
        # inside a running event loop, which is where nbclient runs the notebook.)
        from jupyter_client.session import Session

        self.session = Session(key=km.session.key, signature_scheme=km.session.signature_scheme,
                               username="grader")
        self._ctx = zmq.Context()
        self._ctx.setsockopt(zmq.MAXMSGSIZE, int(getattr(km, "max_message_mb", 8)) << 20)
        self._ctx.setsockopt(zmq.RCVHWM, int(getattr(km, "iopub_hwm", 64)))
        self._shell = self._ctx.socket(zmq.DEALER)
        self._shell.linger = 0
        self._shell.connect(km._make_url("shell"))
        self._poller = zmq.Poller()
        self._poller.register(self._shell, zmq.POLLIN)
        # Per-call transport: a Unix socket served by a daemon thread in the kernel (set up on first use);
        # "off" once it could not be set up or broke: every call then goes through an execute_request.
        self._sock: socket.socket | None = None
        self._sock_state = "new"

    # ------------------------------------------------------------------ liveness

    def _exit_status(self) -> int | None:
        if hasattr(self.km, "sandbox_exit_status"):
            return self.km.sandbox_exit_status()
        proc = getattr(getattr(self.km, "provisioner", None), "process", None)
        return -1 if proc is None else proc.poll()

    def _describe_exit(self) -> str:
        if hasattr(self.km, "describe_exit"):
            return self.km.describe_exit()
        return f"exit status {self._exit_status()}"

    @property
    def alive(self) -> bool:
        if self.dead_reason is None and self._exit_status() is not None:
            self.dead_reason = self._describe_exit()
        return self.dead_reason is None

    def mark_dead(self, reason: str) -> None:
        if self.dead_reason is None:
            self.dead_reason = reason

    def close(self) -> None:
        self._sock_off()
        try:
            self._shell.close(linger=0)
            self._ctx.term()
        except Exception:
            pass

    def _send(self, msg_type: str, content: dict) -> str:
        msg = self.session.msg(msg_type, content)
        self.session.send(self._shell, msg)
        return msg["header"]["msg_id"]

    def ping(self, timeout: float) -> bool:
        """Does the kernel answer a kernel_info request within `timeout` seconds?"""
        if not self.alive:
            return False
        try:
            return self._wait_reply(self._send("kernel_info_request", {}), time.monotonic() + timeout) is not None
        except RemoteError:
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the kernel answers on the shell channel (RemoteError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping(min(1.0, max(0.05, deadline - time.monotonic()))):
                return
            if not self.alive:
                raise RemoteError(f"kernel died ({self.dead_reason})")
        raise RemoteError("kernel did not become ready")

    # ------------------------------------------------------------------ encoding

    def _new_key(self) -> str:
        self._counter += 1
        return f"g{self._counter}"

    def _register(self, key: str, arr: np.ndarray) -> None:
        old = self._tracked.get(key)
        if old is not None and old.ref() is not None:
            self._key_of.pop(id(old.ref()), None)
        self._tracked[key] = _Tracked(arr)
        self._key_of[id(arr)] = key

    def _encode(self, v: Any, arrays: dict, upload: list, depth: int = 0) -> dict:
        if depth > _MAX_DEPTH:
            raise TypeError("argument nested too deeply")
        tv = type(v)
        if v is None:
            return {"t": "none"}
        if tv is bool:
            return {"t": "bool", "v": v}
        if tv is int:
            return {"t": "int", "v": v}
        if tv is float:
            return {"t": "float", "v": v}
        if tv is str:
            return {"t": "str", "v": v}
        if isinstance(v, np.generic):
            if v.dtype.kind not in _PLAIN_KINDS:
                raise TypeError(f"cannot send numpy scalar of dtype {v.dtype} to the student kernel")
            key = f"s{len(arrays)}"
            arrays[key] = np.asarray(v)
            return {"t": "npscalar", "k": key}
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in _PLAIN_KINDS or v.dtype.fields is not None or v.dtype.subdtype is not None:
                raise TypeError(f"cannot send an array of dtype {v.dtype} to the student kernel")
            key = self._key_of.get(id(v))
            entry = self._tracked.get(key) if key else None
            if entry is None or entry.ref() is not v:
                key = self._new_key()
                self._register(key, v)
            if key not in arrays:
                arrays[key] = np.ascontiguousarray(v)
                upload.append(key)
                self._tracked[key].snapshot = v.copy()
            return {"t": "arr", "k": key}
        if tv is tuple or tv is list:
            return {"t": "tuple" if tv is tuple else "list",
                    "v": [self._encode(x, arrays, upload, depth + 1) for x in v]}
        if tv is dict:
            return {"t": "dict", "v": [[self._encode(k, arrays, upload, depth + 1),
                                        self._encode(x, arrays, upload, depth + 1)] for k, x in v.items()]}
        if isinstance(v, RemoteObject):
            if object.__getattribute__(v, "_rk_kernel") is not self:
                raise RemoteError("remote handle belongs to another (dead) kernel")
            return {"t": "ref", "r": object.__getattribute__(v, "_rk_ref")}
        raise TypeError(f"cannot send a {tv.__name__} to the student kernel (plain data and numpy arrays only)")

    def _decode(self, node: Any, arrays: dict, budget: list, depth: int = 0) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise RemoteError("malformed result (too many nodes)")
        if depth > _MAX_DEPTH or type(node) is not dict:
            raise RemoteError("malformed result (structure)")
        t = node.get("t")
        v = node.get("v")
        if t == "none":
            return None
        if t == "bool" and type(v) is bool:
            return v
        if t == "int" and type(v) is int:
            return v
        if t == "float" and type(v) in (float, int):
            return float(v)
        if t == "str" and type(v) is str:
            return v
        if t == "npscalar":
            arr = arrays.get(node.get("k")) if type(node.get("k")) is str else None
            if arr is None or arr.shape != ():
                raise RemoteError("malformed result (scalar)")
            return arr[()]
        if t == "arr":
            key = node.get("k")
            arr = arrays.get(key) if type(key) is str else None
            if arr is None:
                raise RemoteError("malformed result (missing array)")
            entry = self._tracked.get(key)
            live = entry.ref() if entry is not None else None
            if live is not None and _same(live, arr):
                return live                 # the very object the grader sent (identity preserved)
            if live is not None and live.shape == arr.shape and live.dtype == arr.dtype and live.flags.writeable:
                np.copyto(live, arr)        # same object, changed in the kernel: mirror the change in place
                entry.snapshot = live.copy()
                return live
            arr = np.array(arr)             # own, writable copy
            self._register(key, arr)
            return arr
        if t in ("tuple", "list") and type(v) is list:
            items = [self._decode(x, arrays, budget, depth + 1) for x in v]
            return tuple(items) if t == "tuple" else items
        if t == "dict" and type(v) is list:
            out = {}
            for pair in v:
                if type(pair) is not list or len(pair) != 2:
                    raise RemoteError("malformed result (dict)")
                key = self._decode(pair[0], arrays, budget, depth + 1)
                if type(key) not in (str, int, float, bool) and key is not None:
                    raise RemoteError("malformed result (dict key)")
                out[key] = self._decode(pair[1], arrays, budget, depth + 1)
            return out
        if t == "obj" and type(node.get("id")) is int:
            type_name = node.get("type")
            type_name = type_name[:100] if type(type_name) is str else "object"
            tid = node.get("tid")
            return RemoteObject(self, {"kind": "obj", "id": node["id"]}, _printable(type_name),
                                node.get("callable") is True, tid if type(tid) is str and len(tid) < 40 else None)
        raise RemoteError("malformed result (node)")

    # ------------------------------------------------------------------ transport

    def _request(self, req: dict, arrays: dict | None = None, upload: list | None = None) -> dict:
        if not self.alive:
            raise RemoteError(f"kernel died ({self.dead_reason})")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise RemoteError("TimeoutError: time budget of this test cell exhausted")
        self.calls += 1
        token = secrets.token_hex(12)
        prefix = os.path.join(self.scratch_dir, f"_rpc_{token}")
        in_path = prefix + "_in.npz"
        # upload tracked arrays the grader changed since they were last synced
        arrays = dict(arrays or {})
        upload = list(upload or [])
        dead = []
        for key, entry in list(self._tracked.items()):
            arr = entry.ref()
            if arr is None:
                dead.append(key)
                del self._tracked[key]
                continue
            if key not in arrays and not _same(arr, entry.snapshot):
                arrays[key] = np.ascontiguousarray(arr)
                upload.append(key)
                entry.snapshot = arr.copy()
        self._key_of = {id(e.ref()): k for k, e in self._tracked.items() if e.ref() is not None}
        req = dict(req, prefix=prefix, upload=upload, drop=dead, **{"in": in_path if arrays else None})
        try:
            if arrays:
                fd = os.open(in_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
                os.fchmod(fd, 0o644)
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, **arrays)
            line = json.dumps(req, allow_nan=True)
            status = self._socket_call(line)
            if status is None:      # no socket transport: one execute_request per call
                expr = _CALL.format(version=HELPER_VERSION, request=line)
                status = self._execute("", expr)
                if status.get("status") != "ok":
                    # helper not installed yet (or removed by student code): install it and try once more
                    self._execute(_INSTALL.format(source=KERNEL_HELPER, version=HELPER_VERSION), None)
                    status = self._execute("", expr)
            if status.get("status") != "ok":
                ename = status.get("ename")
                ename = _printable(ename[:100]) if type(ename) is str else "error"
                raise RemoteError(f"the RPC helper failed in the kernel ({ename})")
            raw = _read_untrusted(prefix + "_out.json", self.max_json_bytes)
            if raw is None:
                raise RemoteError("no result from the kernel (the RPC helper did not answer)")
            try:
                resp = json.loads(raw)
            except (ValueError, RecursionError, UnicodeDecodeError):
                raise RemoteError("malformed result (JSON)") from None
            if type(resp) is not dict or type(resp.get("ok")) is not bool:
                raise RemoteError("malformed result (envelope)")
            sync = resp.get("sync", [])
            if type(sync) is not list or not all(type(k) is str and _KEY.match(k) for k in sync):
                raise RemoteError("malformed result (sync)")
            out_arrays: dict[str, np.ndarray] = {}
            npz = _read_untrusted(prefix + "_out.npz", self.max_result_bytes)
            if npz is not None:
                out_arrays = load_npz_untrusted(npz, self.max_result_bytes)
            self._apply_sync(sync, out_arrays)
            if not resp["ok"]:
                etype, msg = resp.get("etype"), resp.get("msg")
                etype = _printable(etype[:100]) if type(etype) is str else "Exception"
                msg = _printable(msg[:4000]) if type(msg) is str else ""
                raise remote_error(etype, msg)
            resp["_arrays"] = out_arrays
            return resp
        finally:
            for suffix in ("_in.npz", "_out.npz", "_out.json", "_out.json.tmp"):
                _unlink(prefix + suffix)

    def _apply_sync(self, keys: list, arrays: dict) -> None:
        """Write kernel-side changes of tracked arrays into the grader's arrays, in place."""
        for key in keys:
            new = arrays.get(key)
            entry = self._tracked.get(key)
            if new is None or entry is None:
                continue
            live = entry.ref()
            if live is None:
                continue
            if live.shape == new.shape and live.dtype == new.dtype and live.flags.writeable:
                np.copyto(live, new)
                entry.snapshot = live.copy()
            # else: the kernel resized or retyped it; the grader's array cannot follow in place

    # Socket transport. The grader binds a fresh, randomly named Unix socket in the scratch directory (bind never
    # follows or replaces an existing path, so a planted symlink only makes the set-up fail), the kernel's helper
    # connects to it and serves each request line in a daemon thread, answering "ok" or "error <TypeName>". The
    # grader only ever talks over the accepted connection, never connects to a path in the scratch directory.
    # Anything unexpected (set-up fails, the thread is gone, stray data) turns the socket off and the call goes
    # through the execute_request path instead; an answer lost in the middle of a call is a RemoteError.

    def _sock_off(self) -> None:
        self._sock_state = "off"
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _socket_setup(self) -> bool:
        self._sock_state = "off"
        path = os.path.join(os.path.abspath(self.scratch_dir), f"_rpc_{secrets.token_hex(10)}.sock")
        if len(os.fsencode(path)) > 100:        # sun_path limit
            return False
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bound = False
        try:
            listener.bind(path)
            bound = True
            # Make it connectable for the kernel's UID without following a path the student might have swapped.
            fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                st = os.fstat(fd)
                if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
                    return False
                os.chmod(f"/proc/self/fd/{fd}", 0o666)
            finally:
                os.close(fd)
            listener.listen(1)
            listener.setblocking(False)
            self._execute(_START.format(version=HELPER_VERSION, path=path, install=textwrap.indent(
                _INSTALL.format(source=KERNEL_HELPER, version=HELPER_VERSION), "    ")), None)
            if not select.select([listener], [], [], 2.0)[0]:
                return False
            conn, _ = listener.accept()
            conn.setblocking(False)
            self._sock = conn
            self._sock_state = "up"
            return True
        except OSError:
            return False
        finally:
            listener.close()
            if bound:
                _unlink(path)

    def _socket_call(self, line: str) -> dict | None:
        """Run one request over the socket; the status dict like :meth:`_execute`'s, or None if the socket
        transport is unavailable (then nothing was sent and the caller uses the execute_request path)."""
        if self._sock_state == "off" or len(line) >= _MAX_LINE or "\n" in line:
            return None
        if self._sock_state == "new" and not self._socket_setup():
            return None
        sock = self._sock
        budget = self.timeout
        if self.deadline is not None:
            budget = min(budget, max(0.0, self.deadline - time.monotonic()))
        deadline = time.monotonic() + budget
        try:
            # between calls the connection must be quiet: EOF (thread gone) or stray bytes mean it is unusable
            if select.select([sock], [], [], 0)[0]:
                self._sock_off()
                return None
            data = memoryview(line.encode() + b"\n")
            while data:
                if not select.select([], [sock], [], max(0.0, min(0.25, deadline - time.monotonic())))[1]:
                    if time.monotonic() >= deadline or not self.alive:
                        # the thread is not reading: nothing complete was delivered, so nothing will be served
                        self._sock_off()
                        return None
                    continue
                try:
                    data = data[sock.send(data):]
                except (BlockingIOError, InterruptedError):
                    continue
        except OSError:
            self._sock_off()
            return None
        reply = self._socket_reply(deadline)
        if reply is None:
            if not self.alive:
                raise RemoteError(f"kernel died ({self.dead_reason})")
            # Timed out. The serving thread cannot be signalled; ask the idle main thread to raise
            # KeyboardInterrupt in it, and kill the kernel if that does not bring an answer in time.
            try:
                self._send("execute_request", {
                    "code": _INTERRUPT.format(version=HELPER_VERSION), "silent": True, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": False})
            except Exception:
                pass
            if self._socket_reply(time.monotonic() + self.interrupt_grace) is not None:
                raise RemoteError(f"TimeoutError: call did not finish within {budget:.0f} s (interrupted)")
            if hasattr(self.km, "kill_now"):
                self.km.kill_now()
            self.mark_dead(f"killed after a call did not finish within {budget:.0f} s")
            self._sock_off()
            raise RemoteError(f"TimeoutError: call did not finish within {budget:.0f} s (kernel killed)")
        if reply == b"ok":
            return {"status": "ok"}
        if reply.startswith(b"error "):
            return {"status": "error", "ename": reply[6:106].decode("ascii", "replace")}
        return {"status": "error", "ename": "connection lost" if reply == b"" else "bad reply"}

    def _socket_reply(self, deadline: float) -> bytes | None:
        """The reply line (without newline); b"" if the connection broke (the socket is then off); None when
        `deadline` passed. RemoteError if the kernel died."""
        buf = b""
        sock = self._sock
        while sock is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                ready = select.select([sock], [], [], min(0.25, remaining))[0]
                if not ready:
                    if not self.alive:
                        self._sock_off()
                        raise RemoteError(f"kernel died ({self.dead_reason})")
                    continue
                chunk = sock.recv(256 - len(buf))
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            if b"\n" in buf:
                line, rest = buf.split(b"\n", 1)
                if rest:        # more than one answer to one request: out of step, stop using the socket
                    self._sock_off()
                return line
            if len(buf) >= 256:
                break
        self._sock_off()
        return b""

    def _execute(self, code: str, expr: str | None) -> dict:
        """Run `code` (and user expression `expr`) in the kernel and wait for the reply; returns the user
        expression's status dict ({} without `expr`). RemoteError on timeout or death."""
        budget = self.timeout
        if self.deadline is not None:
            budget = min(budget, max(0.0, self.deadline - time.monotonic()))
        msg_id = self._send("execute_request", {
            "code": code, "silent": True, "store_history": False, "user_expressions": {"r": expr} if expr else {},
            "allow_stdin": False, "stop_on_error": False})
        deadline = time.monotonic() + budget
        reply = self._wait_reply(msg_id, deadline)
        if reply is None:
            if not self.alive:
                raise RemoteError(f"kernel died ({self.dead_reason})")
            # Timed out: interrupt (student code may still be looping), then kill if it does not answer.
            if hasattr(self.km, "interrupt_now"):
                self.km.interrupt_now()
            if self._wait_reply(msg_id, time.monotonic() + self.interrupt_grace) is not None:
                raise RemoteError(f"TimeoutError: call did not finish within {budget:.0f} s (interrupted)")
            if hasattr(self.km, "kill_now"):
                self.km.kill_now()
            self.mark_dead(f"killed after a call did not finish within {budget:.0f} s")
            raise RemoteError(f"TimeoutError: call did not finish within {budget:.0f} s (kernel killed)")
        if not expr:
            return {}
        content = reply.get("content") if isinstance(reply, dict) else None
        ue = content.get("user_expressions") if isinstance(content, dict) else None
        status = ue.get("r") if isinstance(ue, dict) else None
        return status if isinstance(status, dict) else {"status": "error", "ename": "no reply"}

    def _wait_reply(self, msg_id: str, deadline: float) -> dict | None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not self._poller.poll(int(min(0.25, remaining) * 1000) + 1):
                if not self.alive:
                    raise RemoteError(f"kernel died ({self.dead_reason})")
                continue
            try:
                _, msg = self.session.recv(self._shell, mode=zmq.NOBLOCK)
            except Exception:       # bad signature or undecodable message
                continue
            parent = msg.get("parent_header") if isinstance(msg, dict) else None
            if isinstance(parent, dict) and parent.get("msg_id") == msg_id:
                return msg

    # ------------------------------------------------------------------ operations

    def _value(self, resp: dict) -> Any:
        budget = [self.max_nodes]
        return self._decode(resp.get("value"), resp["_arrays"], budget)

    def call(self, ref: dict, args: tuple, kwargs: dict) -> Any:
        arrays: dict = {}
        upload: list = []
        req = {"op": "call", "ref": ref, "args": self._encode(tuple(args), arrays, upload),
               "kwargs": self._encode(dict(kwargs), arrays, upload)}
        return self._value(self._request(req, arrays, upload))

    def getattr(self, ref: dict, name: str, tid: str | None = None) -> Any:
        """Attribute of a remote object: a plain value, a handle, or a callable proxy. A method found on the
        object's class is remembered per class (until ``session_reset``), so calling ``obj.method(...)`` on further
        instances of that class costs one RPC instead of two; the method is still looked up in the kernel at call
        time."""
        name = str(name)
        method = RemoteObject(self, {"kind": "attr", "base": ref, "attr": name}, f"method {name}", True)
        if tid is not None and (tid, name) in self._methods:
            return method
        resp = self._request({"op": "getattr", "ref": ref, "attr": name})
        node = resp.get("value")
        if isinstance(node, dict) and node.get("t") == "callable":
            if tid is not None and node.get("cls") is True:
                self._methods.add((tid, name))
            return method
        return self._value(resp)

    def setattr(self, ref: dict, name: str, value: Any) -> None:
        arrays: dict = {}
        upload: list = []
        req = {"op": "setattr", "ref": ref, "attr": str(name), "value": self._encode(value, arrays, upload)}
        self._request(req, arrays, upload)

    def resolve(self, names: list[str]) -> dict[str, tuple[str, Any]]:
        """Classify kernel globals: name -> ("missing", None) | ("module", module name) | ("value", plain value)
        | ("remote", None) (an object that must stay in the kernel)."""
        resp = self._request({"op": "resolve", "names": [str(n) for n in names]})
        table = resp.get("names")
        if type(table) is not dict:
            raise RemoteError("malformed result (names)")
        out: dict[str, tuple[str, Any]] = {}
        budget = [self.max_nodes]
        for name in names:
            node = table.get(name)
            if type(node) is not dict:
                raise RemoteError("malformed result (names)")
            t = node.get("t")
            if t == "missing":
                out[name] = ("missing", None)
            elif t == "remote":
                out[name] = ("remote", None)
            elif t == "module":
                mod = node.get("name")
                out[name] = ("module", mod if type(mod) is str else "")
            else:
                out[name] = ("value", self._decode(node, resp["_arrays"], budget))
        return out

    def session_reset(self) -> None:
        """Forget handles and tracked arrays on both sides (between test cells)."""
        self._tracked.clear()
        self._key_of.clear()
        self._methods.clear()
        if self.alive:
            try:
                self._request({"op": "reset"})
            except RemoteError:
                pass


def _printable(text: str) -> str:
    """Drop control characters (ANSI escapes etc.) except newline and tab."""
    return "".join(ch for ch in text if ch in "\n\t" or (ch.isprintable()))
