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
arrays, and a tracked array returned again is the very same grader object (grading/in_sandbox/rpc_server.py
says how).

Layers
------
One module each: transport.py (frames over one Unix socket, and its errors), session.py (operations, argument
encoding, array tracking; replies decoded as hostile input by decode.py), kernel_handle.py (the bootstrap that ships
grading/in_sandbox/ into the kernel, liveness, interrupts and kills). The wire format and the kernel side are in
grading/in_sandbox/, the code that runs inside the sandbox; this module is what the rest of the grader imports.

Trust
-----
The kernel side runs in the student's kernel, so student code can monkeypatch anything there (numpy, builtins,
the server itself) and forge replies. That can only change the answers that come back from *its own* code --
which it controls anyway -- never what the trusted grader computes with them: the grader never unpickles, never
evaluates kernel-provided code or reprs, and treats every byte from the kernel as untrusted input.
"""
from __future__ import annotations

from .errors import RemoteError, remote_error
from .kernel_handle import VERSION, KernelProcess, RemoteKernel, UnsandboxedKernel
from .session import RemoteName, RemoteObject, RpcSession
from .transport import Channel, ChannelBroken, ReplyTooLarge

__all__ = ["Channel", "ChannelBroken", "KernelProcess", "RemoteError", "RemoteKernel", "RemoteName", "RemoteObject",
           "ReplyTooLarge", "RpcSession", "UnsandboxedKernel", "remote_error", "VERSION"]
