"""The grader's handle on one running student kernel: the RPC's bootstrap, the kernel's liveness, interrupts and
kills. Calls are session.py's; they travel over transport.py's channel.

Bootstrap: on first use the grader binds a socket in the scratch directory (transport.listen_in) and sends the
whole in-sandbox package (grading/in_sandbox/, read from its directory; its version is the hash of its sources) in
one silent execute request, which makes it the package ``_grading_in_sandbox`` in the kernel (its modules imported
on first use), starts the kernel side and connects back.

Liveness: nothing the kernel does can make a call wait longer than its timeout plus ``interrupt_grace``: a call that
overruns its timeout is interrupted (the idle main thread is asked to raise ``KeyboardInterrupt`` in the serving
thread: a signal cannot reach a thread), and the kernel is killed if no reply comes within the grace. If the channel
breaks (closed, out of step, not readable), the call is a clean RemoteError and the kernel is treated as dead:
later calls fail fast with ``kernel died (...)``.
"""
from __future__ import annotations

import queue
import time
import weakref
from typing import Any, Protocol

from grading import in_sandbox
from grading.in_sandbox import wire

from .errors import RemoteError, printable
from .session import RpcSession
from .transport import Channel, ChannelBroken, ReplyTooLarge, accept_within, listen_in

# The kernel side: the in-sandbox package's sources, and its version.
SHIPPED = in_sandbox.sources()
VERSION = in_sandbox.version(SHIPPED)

# The only kernel-side code kept in a string: one expression that runs the package's __init__ as the package
# (binding no name in the student's namespace), lets it serve its other modules from the sources, and starts the
# server on the student's globals.
_BOOTSTRAP = ("(lambda sys, package, sources: sys.modules.__setitem__(package.__name__, package) or vars(package)"
              ".update(__path__=[], __package__=package.__name__) or exec(compile(sources['__init__.py'], "
              "package.__name__, 'exec'), vars(package)) or package.install(sources) or __import__(package.__name__"
              " + '.rpc_serving', fromlist=['start']).start({path!r}, globals(), {options!r}))(__import__('sys'), "
              "__import__('types').ModuleType({package!r}), {sources!r})")

# Sent (as a silent execute request, run by the idle main thread) when a call overran its timeout.
_INTERRUPT = f"__import__('sys').modules[{in_sandbox.INSIDE + '.rpc_serving'!r}].interrupt()"


def bootstrap_code(path: str, options: dict) -> str:
    """The execute request that installs the kernel side and connects it to the socket at `path`."""
    return _BOOTSTRAP.format(package=in_sandbox.INSIDE, sources=SHIPPED, path=path, options=options)


class KernelProcess(Protocol):
    """What a RemoteKernel needs of the kernel it serves (grading.sandbox.kernel_manager.SandboxedKernelManager)."""

    def blocking_client(self) -> Any: ...
    def sandbox_exit_status(self) -> int | None: ...        # None while it runs
    def describe_exit(self) -> str: ...
    def kill_now(self) -> None: ...


class UnsandboxedKernel:
    """A plain jupyter_client KernelManager as a KernelProcess (tests and benchmarks of the RPC alone: student code
    never runs in one)."""

    def __init__(self, km: Any):
        self.km = km

    def blocking_client(self) -> Any:
        return self.km.blocking_client()

    def sandbox_exit_status(self) -> int | None:
        proc = getattr(self.km.provisioner, "process", None)
        return -1 if proc is None else proc.poll()

    def describe_exit(self) -> str:
        return f"exit status {self.sandbox_exit_status()}"

    def kill_now(self) -> None:
        self.km.shutdown_kernel(now=True)


def _release_client(client: Any) -> None:
    try:
        client.shell_channel.close()
        client.context.destroy(linger=0)
    except Exception:
        pass


class RemoteKernel(RpcSession):
    """RPC endpoint for one running student kernel.

    km: the started kernel, as a :class:`KernelProcess` (a SandboxedKernelManager is one; wrap a plain
        jupyter_client KernelManager in :class:`UnsandboxedKernel`).
    scratch_dir: the directory shared with the kernel (same absolute path on both sides).
    timeout: seconds per call; on expiry the call is interrupted, and the kernel killed if it does not answer
        within ``interrupt_grace`` seconds (later calls then fail fast with "kernel died").
    max_result_bytes: the largest reply accepted (wire.MAX_REPLY_BYTES); max_json_bytes: the largest reply header;
        max_nodes: the most value nodes decoded per reply.
    """

    def __init__(self, km: KernelProcess, scratch_dir: str, timeout: float = 30.0, interrupt_grace: float = 3.0,
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

    @property
    def alive(self) -> bool:
        if self.dead_reason is None and self.km.sandbox_exit_status() is not None:
            self.dead_reason = self.km.describe_exit()
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
        with listen_in(self.scratch_dir) as (listener, path):
            self._bootstrap(path, deadline)
            conn = accept_within(listener, min(2.0, deadline - time.monotonic()))
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
        msg_id = self._execute(bootstrap_code(path, options))
        reply = self._wait_reply(msg_id, deadline)
        content = reply.get("content") if isinstance(reply, dict) else None
        if not isinstance(content, dict) or content.get("status") != "ok":
            ename = content.get("ename") if isinstance(content, dict) else None
            ename = printable(ename[:wire.MAX_TYPE_NAME]) if type(ename) is str else "no reply in time"
            raise ChannelBroken(f"the kernel side did not start ({ename})")

