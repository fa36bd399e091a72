"""The RPC's transport: frames over one Unix socket to the kernel, never waiting past a deadline, and its errors.

The grader binds a fresh, randomly named socket in the scratch directory (:func:`listen_in`: ``bind`` never follows
or replaces an existing path; the file is checked through an ``O_PATH|O_NOFOLLOW`` descriptor to be the grader's own
socket before it is made connectable for the kernel's UID, and unlinked once the kernel connected). The grader never
connects to a path in the student-writable directory. Frames are wire.py's; what they carry is session.py's.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import select
import socket
import stat
import time
from typing import Callable, Iterator

from grading.in_sandbox import wire

from .errors import RemoteError

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


@contextlib.contextmanager
def listen_in(directory: str) -> Iterator[tuple[socket.socket, str]]:
    """A listening socket at a fresh path in `directory` that the kernel's UID may connect to, and that path; the
    socket is closed and its file unlinked on leaving (connections accepted meanwhile stay open)."""
    path = os.path.join(os.path.abspath(directory), f"_rpc_{secrets.token_hex(10)}.sock")
    if len(os.fsencode(path)) > 100:        # sun_path limit
        raise ChannelBroken("the scratch directory's path is too long for a Unix socket")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound = False
    try:
        listener.bind(path)
        bound = True
        _make_connectable(path)
        listener.listen(1)
        yield listener, path
    except OSError as e:
        raise ChannelBroken(f"socket set-up failed: {e.strerror or type(e).__name__}") from None
    finally:
        listener.close()
        if bound:
            _unlink(path)


def accept_within(listener: socket.socket, timeout: float) -> socket.socket:
    if not select.select([listener], [], [], max(0.0, timeout))[0]:
        raise ChannelBroken("the kernel did not connect")
    return listener.accept()[0]
