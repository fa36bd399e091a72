"""A tiny RPC that lets the trusted grader drive objects living in the (sandboxed) student kernel.

Why
---
nbgrader normally runs the autograder test cells in the student's kernel, so the verdict -- the test cell's
outputs -- is produced by a process the student controls: student code can monkeypatch ``numpy``, ``assert``
helpers, ``sys.stdout``, IPython's traceback display (``set_custom_exc``, ``showtraceback``), or simply print a
number that nbgrader then reads as partial credit. With this package the test cells run in the grader process
instead, and only *data* crosses the boundary: the grader calls the student's classes and functions remotely and
gets back plain values, which trusted code then checks.

Model
-----
``RemoteName(kernel, "Multiply")`` names a global of the student's kernel. Calling it runs ``Multiply(*args,
**kwargs)`` in the kernel. A result comes back as a tree of ``None``/``bool``/``int``/``float``/``str``/
``np.ndarray``/numpy scalars/``tuple``/``list``/``dict`` (exact types only: subclasses such as ``np.matrix`` or a
``namedtuple`` are not "plain"); anything else stays in the kernel and comes back as a :class:`RemoteObject`
handle whose method calls, attribute gets and attribute sets (of plain values) are RPCs too. Exceptions raised by
student code come back as :class:`RemoteError` carrying only ``"TypeName: message"``. Arrays the grader sends are
tracked for a session (one test cell), so in-place changes student code makes to them show up in the grader's
arrays, and a tracked array returned again is the very same grader object (kernel_side.py says how).

Transport
---------
One channel: a Unix socket carrying one request frame and one reply frame per call (wire.py: a JSON header plus
raw ``.npy`` members). Arrays are not copied to be sent (a frame goes out as one gather write of the header and
the arrays' own memory) and are copied once when received (into the array that keeps them). A tracked array
crosses once per session: afterwards only a change makes it cross again (each side compares it bit for bit with
its snapshot of the last sync, in place).

On first use the grader binds a fresh, randomly named socket in the scratch directory
(``bind`` never follows or replaces an existing path; the file is checked through an ``O_PATH|O_NOFOLLOW``
descriptor to be the grader's own socket before it is made connectable for the kernel's UID, and unlinked once
connected), then sends the kernel side (wire.py and kernel_side.py, read from this package; its version is their
hash) in one silent execute request, which makes them modules in the kernel and connects back. The grader never
connects to a path in the student-writable directory. Replies are decoded as hostile input (decode.py): at most
``max_result_bytes`` per reply, plain dtypes only, ``allow_pickle=False``.

Nothing the kernel does can make a call wait longer than its timeout plus ``interrupt_grace``: a call that overruns
its timeout is interrupted (the idle main thread is asked to raise ``KeyboardInterrupt`` in the serving thread: a
signal cannot reach a thread), and the kernel is killed if no reply comes within the grace. If the channel breaks
(closed, out of step, not readable), the call is a clean RemoteError and the kernel is treated as dead: later calls
fail fast with ``kernel died (...)``.

Trust
-----
The kernel side runs in the student's kernel, so student code can monkeypatch anything there (numpy, builtins,
the server itself) and forge replies. That can only change the answers that come back from *its own* code --
which it controls anyway -- never what the trusted grader computes with them: the grader never unpickles, never
evaluates kernel-provided code or reprs, and treats every byte from the kernel as untrusted input.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import secrets
import select
import socket
import stat
import time
import weakref
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import wire
from .decode import TreeDecoder, decode_reply, error_of
from .errors import RemoteError, printable, remote_error

__all__ = ["RemoteError", "RemoteKernel", "RemoteName", "RemoteObject", "remote_error", "VERSION"]

# The kernel side as the modules of a package ``_grading_rpc`` in the kernel, and its version.
_PACKAGE = "_grading_rpc"
_MODULES = [(_PACKAGE, "")] + [(f"{_PACKAGE}.{name}", Path(__file__).with_name(f"{name}.py").read_text())
                               for name in ("wire", "kernel_side")]
VERSION = hashlib.sha256("".join(source for _, source in _MODULES).encode()).hexdigest()[:16]

# The only kernel-side code kept in a string: one expression that makes the sources modules (binding no name in
# the student's namespace) and starts the server on the student's globals.
_BOOTSTRAP = ("(lambda sys, types: [sys.modules.__setitem__(name, module) or vars(module).update(__package__="
              "{package!r}, __path__=[]) or exec(compile(source, name, 'exec'), vars(module)) for name, source in "
              "{modules!r} for module in [types.ModuleType(name)]] and sys.modules[{package!r} + '.kernel_side']"
              ".start({path!r}, globals(), {options!r}))(__import__('sys'), __import__('types'))")

# Sent (as a silent execute request, run by the idle main thread) when a call overran its timeout.
_INTERRUPT = f"__import__('sys').modules[{_PACKAGE + '.kernel_side'!r}].interrupt()"


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
        if live is not None and live.shape == arr.shape and live.dtype == arr.dtype and live.flags.writeable:
            np.copyto(live, arr)        # same object, changed in the kernel: mirror the change in place
            entry.snapshot = arr
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

    def _apply_sync(self, keys: list, arrays: dict) -> None:
        """Write kernel-side changes of tracked arrays into the grader's arrays, in place."""
        for key in keys:
            new, entry = arrays.get(key), self.tracked.get(key)
            live = entry.ref() if entry is not None else None
            if new is not None and live is not None and live.shape == new.shape and live.dtype == new.dtype \
                    and live.flags.writeable:
                np.copyto(live, new)
                entry.snapshot = new
            # else: gone, or the kernel resized or retyped it; the grader's array cannot follow in place

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
        req = {"op": "call", "ref": ref, "args": self._encoded(tuple(args), arrays, upload),
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
        header, out = self._request({"op": "getattr", "ref": ref, "attr": name})
        node = header.get("value")
        if isinstance(node, dict) and node.get("t") == "callable":
            if tid is not None and node.get("cls") is True:
                self._methods.add((tid, name))
            return method
        return _ResultDecoder(self, out).decode(node)

    def setattr(self, ref: dict, name: str, value: Any) -> None:
        arrays: dict = {}
        upload: list = []
        req = {"op": "setattr", "ref": ref, "attr": str(name), "value": self._encoded(value, arrays, upload)}
        self._request(req, arrays, upload)

    def resolve(self, names: list[str]) -> dict[str, tuple[str, Any]]:
        """Classify kernel globals: name -> ("missing", None) | ("module", module name) | ("value", plain value)
        | ("remote", None) (an object that must stay in the kernel)."""
        header, out = self._request({"op": "resolve", "names": [str(n) for n in names]})
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
                self._request({"op": "reset"})
            except RemoteError:
                pass


class ChannelBroken(Exception):
    """The channel is gone or out of step (the message says why)."""


class ReplyTooLarge(RemoteError):
    """A reply frame over the cap arrived; it was discarded whole, so the channel is still in step."""


class Channel:
    """The grader's end of the connected socket: frames out and in, never waiting past a deadline, polling
    `check_alive` (which raises RemoteError once the kernel is dead) while it waits. A request goes out as the
    buffers it is made of (one gather write, arrays not joined); a reply is read straight into one buffer of its
    announced size (at most `limit`; a larger one is read and dropped in pieces)."""

    def __init__(self, sock: socket.socket, limit: int, check_alive: Callable[[], None]):
        sock.setblocking(False)
        with contextlib.suppress(OSError):     # fewer wake-ups per multi-megabyte frame
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, wire.SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wire.SOCKET_BUFFER)
        self.sock, self.limit, self.check_alive = sock, limit, check_alive
        self._buf = bytearray()           # bytes read but not yet placed (a length prefix, the start of a frame)
        self._frame: bytearray | None = None    # the reply payload being received
        self._got = 0                     # bytes of it received
        self._discard = 0                 # bytes still to drop of an oversized frame
        self._dropped = 0                 # size of that frame

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def exchange(self, payload: bytes | list, deadline: float) -> bytearray | None:
        """Send one request payload (bytes, or the list of buffers it is made of), return the reply payload; None
        once `deadline` passed."""
        # Between calls nothing may be pending: any byte from the kernel means the channel is out of step.
        if self._buf or self._frame is not None or self._discard:
            raise ChannelBroken("unexpected data from the kernel between calls")
        if select.select([self.sock], [], [], 0)[0]:
            try:
                pending = self.sock.recv(1, socket.MSG_PEEK)
            except OSError:
                pending = b""
            raise ChannelBroken("unexpected data from the kernel between calls" if pending else "closed by the kernel")
        parts = [payload] if isinstance(payload, (bytes, bytearray, memoryview)) else payload
        if not self.send(wire.framed(parts), deadline):
            raise ChannelBroken("the kernel stopped reading requests")
        self._wait(deadline, read=True)     # the kernel has not answered yet: no point in reading before
        return self.receive(deadline)

    def _wait(self, deadline: float, read: bool) -> bool | None:
        """True when the socket is ready, False when not yet, None once `deadline` passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready = select.select([self.sock] if read else [], [] if read else [self.sock], [], min(0.25, remaining))
        if not (ready[0] or ready[1]):
            self.check_alive()
            return False
        return True

    def send(self, parts: list, deadline: float) -> bool:
        """Send a whole frame given as buffers; False if the kernel did not take it by `deadline`."""
        parts = [p for p in parts if len(p)]
        while parts:
            try:
                parts = wire.sent_past(parts, self.sock.sendmsg(parts[:wire.MAX_SEND_BUFFERS]))
                continue
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                raise ChannelBroken(f"send failed: {e.strerror or type(e).__name__}") from None
            if self._wait(deadline, read=False) is None:
                return False
        return True

    def receive(self, deadline: float) -> bytearray | None:
        """The next reply payload; None once `deadline` passed (the partial frame is kept for later)."""
        while True:
            try:
                while time.monotonic() < deadline:     # read whatever is there; wait only when nothing is
                    payload = self._read()
                    if payload is not None:
                        return payload
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                raise ChannelBroken(f"receive failed: {e.strerror or type(e).__name__}") from None
            if self._wait(deadline, read=True) is None:
                return None

    def _read(self) -> bytearray | None:
        """One step of reading (at most one recv); the reply payload once it is complete (BlockingIOError: nothing
        to read). A first read of up to 64 KiB takes the length prefix and, usually, the whole reply; a large
        reply's remainder is read straight into its buffer."""
        if self._frame is None and not self._discard:
            if len(self._buf) < wire.FRAME_LEN.size:
                self._buf += self._recv(1 << 16)
                if len(self._buf) < wire.FRAME_LEN.size:
                    return None
            (size,) = wire.FRAME_LEN.unpack_from(self._buf)
            del self._buf[:wire.FRAME_LEN.size]
            if size > self.limit:
                self._discard = self._dropped = size
            else:
                self._frame, self._got = bytearray(size), 0
        if self._discard:
            n = min(self._discard, len(self._buf))
            del self._buf[:n]
            self._discard -= n if n else len(self._recv(min(self._discard, 1 << 20)))
            if not self._discard:
                raise ReplyTooLarge(f"result too large ({self._dropped} bytes > {self.limit})")
            return None
        frame = self._frame
        if self._buf:       # bytes read past the prefix (beyond this frame: left for the next call to refuse)
            n = min(len(frame) - self._got, len(self._buf))
            frame[self._got:self._got + n] = self._buf[:n]
            del self._buf[:n]
            self._got += n
        elif self._got < len(frame):
            n = self.sock.recv_into(memoryview(frame)[self._got:])
            if n == 0:
                raise ChannelBroken("closed by the kernel")
            self._got += n
        if self._got < len(frame):
            return None
        self._frame = None
        return frame

    def _recv(self, n: int) -> bytes:
        chunk = self.sock.recv(n)
        if not chunk:
            raise ChannelBroken("closed by the kernel")
        return chunk


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _make_connectable(path: str) -> None:
    """Let the kernel's UID connect to the socket just bound at `path`, without following a path the student
    might have swapped in the meantime."""
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
            raise ChannelBroken("the socket path was tampered with")
        os.chmod(f"/proc/self/fd/{fd}", 0o666)
    finally:
        os.close(fd)


def _release_client(client: Any) -> None:
    try:
        client.shell_channel.close()
        client.context.destroy(linger=0)
    except Exception:
        pass


class RemoteKernel(RpcSession):
    """RPC endpoint for one running student kernel.

    km: a started kernel manager; :class:`grading.sandbox.kernel_manager.SandboxedKernelManager` (its synchronous
        ``sandbox_exit_status``/``kill_now``/``describe_exit`` are used for liveness and kills; other managers fall
        back to polling their provisioner's process).
    scratch_dir: the directory shared with the kernel (same absolute path on both sides).
    timeout: seconds per call; on expiry the call is interrupted, and the kernel killed if it does not answer
        within ``interrupt_grace`` seconds (later calls then fail fast with "kernel died").
    max_result_bytes: the largest reply accepted (wire.MAX_REPLY_BYTES); max_json_bytes: the largest reply header;
        max_nodes: the most value nodes decoded per reply.
    """

    def __init__(self, km: Any, scratch_dir: str, timeout: float = 30.0, interrupt_grace: float = 3.0,
                 max_result_bytes: int = wire.MAX_REPLY_BYTES, max_json_bytes: int = wire.MAX_HEADER_BYTES,
                 max_nodes: int = wire.MAX_NODES):
        super().__init__(max_result_bytes, max_json_bytes, max_nodes)
        self.km = km
        self.scratch_dir = scratch_dir
        self.timeout = float(timeout)
        self.interrupt_grace = float(interrupt_grace)
        # The shell channel carries only the start-up, interrupts and pings; calls go over the Unix socket.
        self._client = km.blocking_client()
        self._client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        # Released on close(), or when this object is collected: pyzmq hangs when garbage collection finalizes a
        # context whose socket is garbage in the same cycle, and a kernel client sits in reference cycles.
        self._release_client = weakref.finalize(self, _release_client, self._client)
        self._channel: Channel | None = None

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

    def _check_alive(self) -> None:
        if not self.alive:
            raise RemoteError(f"kernel died ({self.dead_reason})")

    def close(self) -> None:
        self._drop_channel()
        self._release_client()

    def ping(self, timeout: float) -> bool:
        """Does the kernel answer a kernel_info request within `timeout` seconds?"""
        if not self.alive:
            return False
        try:
            return self._wait_reply(self._client.kernel_info(), time.monotonic() + timeout) is not None
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

    def _wait_reply(self, msg_id: str, deadline: float) -> dict | None:
        """The shell reply to `msg_id`, or None once `deadline` passed; RemoteError if the kernel died."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                msg = self._client.shell_channel.get_msg(timeout=min(0.25, remaining))
            except queue.Empty:
                self._check_alive()
                continue
            except Exception:       # bad signature or undecodable message
                continue
            parent = msg.get("parent_header") if isinstance(msg, dict) else None
            if isinstance(parent, dict) and parent.get("msg_id") == msg_id:
                return msg

    def _execute(self, code: str) -> str:
        return self._client.execute(code, silent=True, store_history=False, user_expressions={},
                                    allow_stdin=False, stop_on_error=False)

    # ------------------------------------------------------------------ the channel

    def _drop_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def _exchange(self, payload: bytes) -> bytes:
        if len(payload) > wire.MAX_REQUEST_BYTES:
            raise RemoteError(f"request too large ({len(payload)} bytes > {wire.MAX_REQUEST_BYTES})")
        budget = self.timeout
        if self.deadline is not None:
            budget = min(budget, max(0.0, self.deadline - time.monotonic()))
        deadline = time.monotonic() + budget
        try:
            channel = self._channel or self._open_channel(deadline)
            reply = channel.exchange(payload, deadline)
            return reply if reply is not None else self._interrupt_stuck(channel, budget)
        except ChannelBroken as e:
            raise self._broken(str(e)) from None

    def _interrupt_stuck(self, channel: Channel, budget: float) -> bytes:
        """The call overran its timeout: interrupt it, or kill the kernel if that brings no reply in time."""
        try:
            self._execute(_INTERRUPT)
        except Exception:
            pass
        try:
            answered = channel.receive(time.monotonic() + self.interrupt_grace) is not None
        except ReplyTooLarge:
            answered = True
        if answered:
            raise RemoteError(f"TimeoutError: call did not finish within {budget:.0f} s (interrupted)")
        if hasattr(self.km, "kill_now"):
            self.km.kill_now()
        self.mark_dead(f"killed after a call did not finish within {budget:.0f} s")
        self._drop_channel()
        raise RemoteError(f"TimeoutError: call did not finish within {budget:.0f} s (kernel killed)")

    def _broken(self, reason: str) -> RemoteError:
        """The channel cannot be used any more, so neither can the kernel. When the kernel process is exiting
        (a crash closes its end first), its exit is the reason given."""
        self._drop_channel()
        deadline = time.monotonic() + self.interrupt_grace
        while self.alive and time.monotonic() < deadline:
            time.sleep(0.02)
        self.mark_dead(f"RPC channel broken: {reason}")
        return RemoteError(f"kernel died ({self.dead_reason})")

    def _open_channel(self, deadline: float) -> Channel:
        """Bind a fresh socket, install and start the kernel side, accept its connection and check its hello."""
        path = os.path.join(os.path.abspath(self.scratch_dir), f"_rpc_{secrets.token_hex(10)}.sock")
        if len(os.fsencode(path)) > 100:        # sun_path limit
            raise ChannelBroken("the scratch directory's path is too long for a Unix socket")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bound = False
        try:
            listener.bind(path)
            bound = True
            _make_connectable(path)
            listener.listen(1)
            self._bootstrap(path, deadline)
            if not select.select([listener], [], [], min(2.0, max(0.0, deadline - time.monotonic())))[0]:
                raise ChannelBroken("the kernel did not connect")
            conn, _ = listener.accept()
        except OSError as e:
            raise ChannelBroken(f"socket set-up failed: {e.strerror or type(e).__name__}") from None
        finally:
            listener.close()
            if bound:
                _unlink(path)
        channel = self._channel = Channel(conn, self.max_result_bytes, self._check_alive)
        try:
            hello = channel.receive(deadline)
            header = wire.split_payload(hello)[0] if hello is not None else None
        except (ValueError, ReplyTooLarge):
            header = None
        if header != {"hello": VERSION}:
            raise ChannelBroken("the kernel side did not answer as version " + VERSION)
        return channel

    def _bootstrap(self, path: str, deadline: float) -> None:
        options = {"version": VERSION, "max_reply": self.max_result_bytes}
        msg_id = self._execute(_BOOTSTRAP.format(package=_PACKAGE, modules=_MODULES, path=path, options=options))
        reply = self._wait_reply(msg_id, deadline)
        content = reply.get("content") if isinstance(reply, dict) else None
        if not isinstance(content, dict) or content.get("status") != "ok":
            ename = content.get("ename") if isinstance(content, dict) else None
            ename = printable(ename[:wire.MAX_TYPE_NAME]) if type(ename) is str else "no reply in time"
            raise ChannelBroken(f"the kernel side did not start ({ename})")
