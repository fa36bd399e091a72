"""The one channel of grading.rpc.client, a Unix socket to a real sandboxed kernel: every call goes over it, student
code breaking it gives a clean RemoteError (and the kernel is then treated as dead), and a looping call never hangs
the grader (interrupted, or the kernel is killed)."""
import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

pytest.importorskip("grading.rpc.client")
if shutil.which("bwrap") is None:
    pytest.skip("bubblewrap not installed", allow_module_level=True)

from grading.rpc.client import RemoteError, RemoteKernel, RemoteName  # noqa: E402
from grading.sandbox.kernel_manager import SandboxedKernelManager  # noqa: E402


def run_async(coro):
    from jupyter_core.utils import run_sync

    async def wrapper():
        return await coro
    return run_sync(wrapper)()

DEFS = """
import numpy as np, time
def scale(x):
    return x * 2
def big():
    return np.zeros(3 << 20)
def spin():
    while True:
        pass
def sleep_forever():
    time.sleep(1000)
"""


class Kernel:
    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="test-rpc-"))
        self.scratch = self.tmp / "scratch"
        self.scratch.mkdir()
        self.km = SandboxedKernelManager(kernel_name="python3", scratch_dir=str(self.scratch), memory_limit_mb=1024)
        run_async(self.km.start_kernel())
        self.rk = RemoteKernel(self.km, str(self.scratch), timeout=20, interrupt_grace=2.0)
        self.rk.wait_ready(60)
        self.run(DEFS)

    def run(self, code, timeout=30):
        kc = self.km.blocking_client()
        kc.start_channels()
        try:
            err = []
            kc.execute_interactive(textwrap.dedent(code), timeout=timeout,
                                   output_hook=lambda m: err.append(m["content"]["ename"])
                                   if m["msg_type"] == "error" else None)
            return err[0] if err else None
        finally:
            kc.stop_channels()

    def close(self):
        self.rk.close()
        run_async(self.km.shutdown_kernel(now=True))
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def kernel():
    k = Kernel()
    try:
        yield k
    finally:
        k.close()


def _fresh(k):
    """A new RemoteKernel on the same kernel (so its channel is set up anew)."""
    k.rk.close()
    k.rk = RemoteKernel(k.km, str(k.scratch), timeout=20, interrupt_grace=2.0)
    return k.rk


def test_socket_channel_is_used_and_round_trips(kernel):
    rk = kernel.rk
    x = np.arange(5.0)
    assert np.array_equal(RemoteName(rk, "scale")(x), 2 * x)
    assert rk._channel is not None
    t0 = time.monotonic()
    for i in range(100):
        assert RemoteName(rk, "scale")(i) == 2 * i
    assert time.monotonic() - t0 < 5
    with pytest.raises(RemoteError, match="NameError"):
        RemoteName(rk, "nope")()
    kernel.run("def boom():\n    1/0")
    with pytest.raises(ZeroDivisionError):
        RemoteName(rk, "boom")()
    assert rk.alive and rk._channel is not None
    # no socket or per-call file is left in the scratch directory (the grader unlinks the socket once connected)
    assert not [p for p in os.listdir(kernel.scratch) if p.startswith("_rpc_")]
    # the kernel side is the package's files, installed as modules
    assert kernel.run("import sys\nassert sys.modules['_grading_in_sandbox.wire'].MAX_REPLY_BYTES == 16 << 20\n"
                      "assert [t for t in __import__('threading').enumerate() if t.name == 'grading-rpc']") is None


def test_reply_over_the_cap_is_a_clean_remote_error(kernel):
    rk = kernel.rk
    with pytest.raises(RemoteError, match=r"^result too large \(\d+ bytes > 16777216\)$"):
        RemoteName(rk, "big")()
    assert rk.alive and RemoteName(rk, "scale")(3) == 6


STUDENT_BREAKS = {
    "delete helper and socket files": """
        import sys, os, glob
        for p in glob.glob('*.sock'): os.remove(p)
        for name in [m for m in sys.modules if m.startswith('_grading_in_sandbox')]:
            sys.modules.pop(name)
        """,
    "kill the serving thread": """
        import threading, ctypes, time
        for t in threading.enumerate():
            if t.name == 'grading-rpc':
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(t.ident), ctypes.py_object(SystemExit))
        # the thread is blocked in recv: it only dies once something arrives
        """,
    "close the connection": """
        import gc, socket
        for o in gc.get_objects():
            if isinstance(o, socket.socket) and o.family == socket.AF_UNIX:
                try:
                    o.close()
                except Exception:
                    pass
        """,
    "stray bytes on the connection": """
        import gc, socket
        for o in gc.get_objects():
            if isinstance(o, socket.socket) and o.family == socket.AF_UNIX and not o._closed:
                try:
                    o.sendall(b"ok\\nok\\n")
                except Exception:
                    pass
        """,
    "replace the server's handler": """
        import sys
        def handle(self, payload):
            raise SystemExit(3)
        sys.modules['_grading_in_sandbox.rpc_server'].Server.handle = handle
        """,
}
# what each break leads to: calls keep working, each call fails cleanly, or the channel (and so the kernel) is gone
OUTCOME = {"delete helper and socket files": "works", "replace the server's handler": "fails",
           "kill the serving thread": "dead", "close the connection": "dead", "stray bytes on the connection": "dead"}


@pytest.mark.parametrize("kind", list(STUDENT_BREAKS))
def test_student_breaking_the_socket_gives_clean_results(kernel, kind):
    rk = kernel.rk
    assert RemoteName(rk, "scale")(1) == 2 and rk._channel is not None
    assert kernel.run(STUDENT_BREAKS[kind]) is None
    results = []
    for i in range(3):
        t0 = time.monotonic()
        try:
            results.append(RemoteName(rk, "scale")(i))
        except RemoteError as e:
            results.append(e)
        assert time.monotonic() - t0 < 10
    if OUTCOME[kind] == "works":
        assert results == [0, 2, 4] and rk.alive
    elif OUTCOME[kind] == "fails":
        assert rk.alive and all(str(r) == "SystemExit: the RPC server failed in the kernel" for r in results), results
    else:
        assert all(isinstance(r, RemoteError) for r in results), results
        assert not rk.alive and rk.dead_reason.startswith("RPC channel broken: "), rk.dead_reason
        assert all(str(r) == f"kernel died ({rk.dead_reason})" for r in results), results
        assert "\n" not in rk.dead_reason


def test_kernel_side_that_never_connects_is_a_clean_error(kernel):
    assert RemoteName(kernel.rk, "scale")(1) == 2
    kernel.run("import socket\nsocket.socket.connect = lambda self, address: None")
    rk = _fresh(kernel)
    t0 = time.monotonic()
    with pytest.raises(RemoteError, match=r"^kernel died \(RPC channel broken: the kernel side did not start"):
        RemoteName(rk, "scale")(3)
    assert time.monotonic() - t0 < 10
    assert not rk.alive and rk._channel is None
    with pytest.raises(RemoteError, match="kernel died"):
        RemoteName(rk, "scale")(4)
    assert not [p for p in os.listdir(kernel.scratch) if p.startswith("_rpc_")]


def test_symlink_in_scratch_is_not_followed(kernel, monkeypatch):
    """A student-planted symlink at the socket path makes the set-up fail (bind never follows), not redirect."""
    import grading.rpc.transport as remote
    target = kernel.tmp / "host-target"
    target.write_text("host file\n")
    os.symlink(target, kernel.scratch / "_rpc_00000000000000000000.sock")
    monkeypatch.setattr(remote.secrets, "token_hex", lambda n=16: "0" * (2 * n))
    rk = _fresh(kernel)
    with pytest.raises(RemoteError, match=r"RPC channel broken: socket set-up failed"):
        RemoteName(rk, "scale")(5)
    assert not rk.alive
    assert target.read_text() == "host file\n"
    assert os.path.islink(kernel.scratch / "_rpc_00000000000000000000.sock")


def test_python_loop_is_interrupted_kernel_survives(kernel):
    rk = kernel.rk
    assert RemoteName(rk, "scale")(1) == 2 and rk._channel is not None
    rk.timeout = 1.0
    t0 = time.monotonic()
    with pytest.raises(RemoteError, match=r"TimeoutError.*interrupted"):
        RemoteName(rk, "spin")()
    assert time.monotonic() - t0 < 1.0 + rk.interrupt_grace + 1
    assert rk.alive
    rk.timeout = 20
    assert RemoteName(rk, "scale")(2) == 4
    assert rk._channel is not None


def test_uninterruptible_call_kills_kernel_within_timeout_plus_grace(kernel):
    rk = kernel.rk
    assert RemoteName(rk, "scale")(1) == 2 and rk._channel is not None
    rk.timeout = 1.0
    t0 = time.monotonic()
    with pytest.raises(RemoteError, match=r"TimeoutError.*kernel killed"):
        RemoteName(rk, "sleep_forever")()
    assert time.monotonic() - t0 < 1.0 + rk.interrupt_grace + 1.5
    assert not rk.alive
    t0 = time.monotonic()
    with pytest.raises(RemoteError, match="kernel died"):
        RemoteName(rk, "scale")(1)
    assert time.monotonic() - t0 < 1


def test_prints_during_calls_are_not_attributed_to_student_cells(kernel):
    """Student output during a socket call belongs to the grader's silent request (as when every call was its
    own request), never to the student cell the kernel ran last."""
    import queue
    rk = kernel.rk
    kernel.run("def noisy(x):\n    print('FROM-RPC')\n    return x")
    assert RemoteName(rk, "noisy")(1) == 1 and rk._channel is not None
    kc = kernel.km.blocking_client()
    kc.start_channels()
    try:
        reply = kc.execute_interactive("print('cell output')", timeout=30, output_hook=lambda m: None)
        cell_id = reply["parent_header"]["msg_id"]
        RemoteName(rk, "noisy")(2)
        parents = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not parents:
            try:
                msg = kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            if msg["msg_type"] == "stream" and "FROM-RPC" in msg["content"]["text"]:
                parents.append(msg["parent_header"].get("msg_id"))
    finally:
        kc.stop_channels()
    assert parents and cell_id not in parents


def test_calls_see_the_cells_context_variables(kernel):
    """numpy's errstate and decimal's context are context variables: a call served by the thread must see what
    the student's cells set, as it did when each call ran in the kernel's main thread."""
    rk = kernel.rk
    assert RemoteName(rk, "scale")(1) == 2 and rk._channel is not None
    kernel.run("import numpy as np, decimal\nnp.seterr(divide='raise'); decimal.getcontext().prec = 5\n"
               "def probe():\n    return np.geterr()['divide'], decimal.getcontext().prec\n"
               "def divide(a, b):\n    return np.float64(a) / np.float64(b)")
    assert RemoteName(rk, "probe")() == ("raise", 5)
    with pytest.raises(FloatingPointError):
        RemoteName(rk, "divide")(1.0, 0.0)
    kernel.run("np.seterr(divide='ignore')")
    assert RemoteName(rk, "probe")() == ("ignore", 5)
    assert rk._channel is not None
