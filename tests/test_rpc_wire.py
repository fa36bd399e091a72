"""The RPC's wire format (grading/in_sandbox/wire.py), its untrusted decoding (grading/rpc/decode.py) and its kernel
side (grading/in_sandbox/rpc_server.py, rpc_serving.py) served in this process, without a kernel: the kernel side
runs in a thread on one end of a socketpair, driven by the grader's own session and channel on the other end."""
import hashlib
import io
import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grading.fixtures.bug_catalog import BUGS  # noqa: E402
from grading import in_sandbox  # noqa: E402
from grading.in_sandbox import rpc_server, rpc_serving, wire  # noqa: E402
from grading.rpc import client, decode, kernel_handle  # noqa: E402
from grading.rpc.client import RemoteError, RemoteName  # noqa: E402


class LocalSession(client.RpcSession):
    """The grader's session driving an in-process kernel side (a Server on `ns`) over a socketpair."""

    def __init__(self, ns, **caps):
        super().__init__(**caps)
        grader_end, self.kernel_end = socket.socketpair()
        self.server = rpc_server.Server(ns, self.max_result_bytes)
        self.thread = threading.Thread(target=rpc_serving.serve_connection, args=(self.kernel_end, self.server),
                                       daemon=True)
        self.thread.start()
        self.channel = client.Channel(grader_end, self.max_result_bytes, lambda: None)

    def _exchange(self, payload):
        reply = self.channel.exchange(payload, time.monotonic() + 20)
        assert reply is not None, "no reply within 20 s"
        return reply


BUG = {bug.name: bug for bug in BUGS}
# Two catalogued answers that change arrays the grader sent (d_out in the same call, x in an earlier one) and
# helpers for each kind of value and failure.
STUDENT = "import numpy as np\n" + BUG["multiply_mutates_d_out"].source + BUG["sum_overwrites_x"].source + """
def scale(x, k=2.0):
    return x * k

def todo():
    raise NotImplementedError("not done yet")

def leave():
    raise SystemExit(3)

def big():
    return np.zeros(3 << 20)     # 24 MiB, over the 16 MiB reply cap

def shapes():
    return {"t": (np.float32(1.5), np.int64(-2), True, None, "s"),
            3: [np.zeros((0, 3)), np.eye(2, dtype=np.complex128)]}

def unplain():
    return [np.ma.array([1.0]), {(1, 2): 3}, object()]

def spin():
    while True:
        pass

answer = 41.5
weights = np.arange(6.0).reshape(2, 3)
kept = []

def keep(x):
    kept.append(x)

def bump():
    x = kept[-1]
    x[123, 456] += 1.0
    x[0, 1] = -0.0                  # the same value as 0.0, other bits
    x[0, 2] = np.frombuffer(np.uint64(0x7FF8000000000001).tobytes(), np.float64)[0]    # a NaN with a payload
"""


@pytest.fixture
def session():
    ns: dict = {}
    exec(STUDENT, ns)
    s = LocalSession(ns)
    try:
        yield s
    finally:
        s.channel.close()
        s.thread.join(5)


GOOD = {"ok": True, "value": {"t": "none"}, "sync": []}


def payload_of(header, *members):
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("!I", len(head)) + head + b"".join(members)


def member(data):
    """A reply carrying `data` as its one .npy member."""
    return payload_of(dict(GOOD, npy=[["k1", len(data)]]), data)


def npy(arr, **kwargs):
    buf = io.BytesIO()
    np.save(buf, arr, **kwargs)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# framing
# ---------------------------------------------------------------------------------------------------------------

ARRAYS = {
    "g1": np.arange(12.0).reshape(3, 4),
    "g2": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
    "g3": np.arange(10.0)[::3],                                  # not contiguous
    "g4": np.array([True, False]),
    "g5": np.zeros((0, 3), dtype=np.uint8),
    "s6": np.asarray(np.complex64(1 - 2j)),                      # 0-d
    "k7": np.arange(4, dtype=">f8"),                             # big-endian
}


def test_frame_round_trip_keeps_header_arrays_and_order():
    header = {"ok": True, "value": {"t": "list", "v": [{"t": "float", "v": float("nan")}]}, "sync": ["k7"]}
    payload = wire.encode_payload(header, ARRAYS)
    framed = wire.frame(payload)
    assert struct.unpack("!Q", framed[:8])[0] == len(payload) and framed[8:] == payload
    got, members = wire.split_payload(payload)
    assert got["sync"] == ["k7"] and np.isnan(got["value"]["v"][0]["v"])
    assert [key for key, _ in members] == list(ARRAYS)
    header2, arrays = decode.decode_reply(payload)
    assert header2["ok"] is True and list(arrays) == list(ARRAYS)
    for key, arr in ARRAYS.items():
        assert type(arrays[key]) is np.ndarray and arrays[key].dtype == arr.dtype
        np.testing.assert_array_equal(arrays[key], arr)


def test_members_are_what_numpy_writes_and_reads():
    """The gather-written members are byte for byte numpy's .npy, and are read back with numpy's layout."""
    for arr in [*ARRAYS.values(), np.zeros((1,) * 20), np.float16([1, 2])]:
        head, data = wire.npy_parts(arr)
        assert head + bytes(data) == npy(arr, allow_pickle=False)
        for _ in range(2):          # parsed, then remembered
            got = decode.load_npy_untrusted(head + bytes(data), 1 << 20)
            ref = np.load(io.BytesIO(npy(arr)))
            assert wire.same_array(got, ref) and got.flags.f_contiguous == ref.flags.f_contiguous
            assert not got.flags.writeable


def test_same_array_compares_bits():
    x = np.linspace(-1, 1, 1 << 16)
    y = x.copy()
    assert wire.same_array(x, y) and wire.same_array(x[::3], y[::3]) and wire.same_array(x[:10], y[:10])
    y[5] = np.nan
    assert not wire.same_array(x, y) and not wire.same_array(y, y.astype(np.float32))
    y[:] = 0.0
    assert not wire.same_array(y, -y) and wire.same_array(y.reshape(256, 256).T, y.reshape(256, 256).T.copy())
    assert not wire.same_array(y, y.reshape(256, 256))


def test_sent_past_splits_a_partial_send():
    parts = [b"ab", memoryview(b"cdef"), b"g"]
    assert [bytes(p) for p in wire.sent_past(parts, 0)] == [b"ab", b"cdef", b"g"]
    assert [bytes(p) for p in wire.sent_past(parts, 3)] == [b"def", b"g"]
    assert [bytes(p) for p in wire.sent_past(parts, 6)] == [b"g"]
    assert wire.sent_past(parts, 7) == []


def test_frame_without_arrays_and_plain_checks():
    header, arrays = decode.decode_reply(wire.encode_payload({"ok": False, "etype": "E", "msg": "m"}, {}))
    assert arrays == {} and header == {"ok": False, "etype": "E", "msg": "m"}
    assert wire.plain_array(np.zeros(2)) and not wire.plain_array(np.ma.array([1.0]))
    assert not wire.plain_dtype(np.dtype(object)) and not wire.plain_dtype(np.dtype([("a", "<f8")]))
    assert not wire.plain_dtype(np.dtype(("<f8", (2,)))) and not wire.plain_dtype(np.dtype("U3"))


# ---------------------------------------------------------------------------------------------------------------
# every rejection of decode.decode_reply
# ---------------------------------------------------------------------------------------------------------------

M = npy(np.zeros(3))
header_v1 = io.BytesIO()
np.lib.format.write_array_header_1_0(header_v1, {"descr": "<f8", "fortran_order": False, "shape": (10 ** 12,)})
huge_npy_header = b"\x93NUMPY\x01\x00" + struct.pack("<H", 20000) + b" " * 19999 + b"\n"

REJECTED = {
    "empty": (b"", "too short"),
    "header longer than the frame": (struct.pack("!I", 100) + b"{}", "header too large"),
    "not JSON": (payload_of(b"{not json"), "JSON"),
    "not UTF-8": (payload_of(b"\xff\xfe\xfa"), "JSON"),
    "deep nesting": (payload_of(b"[" * 100000 + b"]" * 100000), "JSON"),
    "header not an object": (payload_of(b"[1, 2]"), "envelope"),
    "no member table": (payload_of(GOOD), "member table"),
    "member table not a list": (payload_of(dict(GOOD, npy={"k1": 3})), "member table"),
    "member entry not a pair": (payload_of(dict(GOOD, npy=[["k1"]])), "member table"),
    "member key outside the pattern": (payload_of(dict(GOOD, npy=[["../x", len(M)]]), M), "member table"),
    "member key not a string": (payload_of(dict(GOOD, npy=[[1, len(M)]]), M), "member table"),
    "duplicate member": (payload_of(dict(GOOD, npy=[["k1", len(M)], ["k1", len(M)]]), M, M), "member table"),
    "negative member size": (payload_of(dict(GOOD, npy=[["k1", -1]])), "member table"),
    "bool member size": (payload_of(dict(GOOD, npy=[["k1", True]]), b"x"), "member table"),
    "member past the frame": (payload_of(dict(GOOD, npy=[["k1", 10 ** 9]]), M), "member table"),
    "trailing bytes": (payload_of(dict(GOOD, npy=[]), b"junk"), "do not fill"),
    "ok missing": (payload_of({"value": {"t": "none"}, "npy": []}), "envelope"),
    "ok not a bool": (payload_of({"ok": 1, "npy": []}), "envelope"),
    "sync not a list": (payload_of(dict(GOOD, sync="k1", npy=[])), "sync"),
    "sync key outside the pattern": (payload_of(dict(GOOD, sync=["x1"], npy=[])), "sync"),
    "bad npy magic": (member(b"NOTNUMPY1234"), "ValueError"),
    "unknown npy version": (member(M[:6] + b"\x09\x00" + M[8:]), "npy version"),
    "pickled object array": (member(npy(np.array([{}, 1], dtype=object), allow_pickle=True)), "unsupported dtype"),
    "structured dtype": (member(npy(np.zeros(2, dtype=[("a", "<f8")]))), "unsupported dtype"),
    "string dtype": (member(npy(np.array(["abc"]))), "unsupported dtype"),
    "datetime dtype": (member(npy(np.array(["2020-01-01"], "M8[D]"))), "unsupported dtype"),
    "lying npy header": (member(header_v1.getvalue() + b"x" * 64), "size does not match"),
    "truncated member": (member(M[:-8]), "size does not match"),
    "too many dimensions": (member(npy(np.zeros((1,) * 33))), "shape"),
    "npy header over its cap": (member(huge_npy_header), "malformed result arrays"),
}


@pytest.mark.parametrize("kind", list(REJECTED))
def test_decode_reply_rejects(kind):
    data, why = REJECTED[kind]
    with pytest.raises(RemoteError) as info:
        decode.decode_reply(data)
    assert why in str(info.value) and "\n" not in str(info.value)


def test_decode_reply_caps():
    with pytest.raises(RemoteError, match="header too large"):
        decode.decode_reply(payload_of(dict(GOOD, npy=[])), max_header=10)
    with pytest.raises(RemoteError, match="member table"):
        decode.decode_reply(wire.encode_payload(GOOD, {"k1": np.zeros(1), "k2": np.zeros(1)}), max_members=1)
    with pytest.raises(RemoteError, match="too large"):
        decode.load_npy_untrusted(M, budget=len(M) - 1)


class Decoder(decode.TreeDecoder):
    def array(self, key, arr):
        return ("array", key)

    def handle(self, object_id, type_name, is_callable, tid):
        return ("handle", object_id, type_name, is_callable, tid)


TREES_REJECTED = {
    "not a node": ([1], "structure"),
    "unknown tag": ({"t": "bogus"}, "node"),
    "bool as int": ({"t": "int", "v": True}, "node"),
    "str as float": ({"t": "float", "v": "1"}, "node"),
    "missing array": ({"t": "arr", "k": "k9"}, "missing array"),
    "array as scalar": ({"t": "npscalar", "k": "k1"}, "scalar"),
    "list without items": ({"t": "list", "v": {"t": "none"}}, "node"),
    "dict pair of three": ({"t": "dict", "v": [[{"t": "none"}] * 3]}, "dict"),
    "unhashable dict key": ({"t": "dict", "v": [[{"t": "list", "v": []}, {"t": "none"}]]}, "dict key"),
    "handle without an id": ({"t": "obj", "id": "1"}, "node"),
    "too deep": ({"t": "list", "v": [json.loads('{"t": "list", "v": [' * 70 + ']}' * 70)]}, "structure"),
    "too many nodes": ({"t": "list", "v": [{"t": "none"}] * 101}, "too many nodes"),
}


@pytest.mark.parametrize("kind", list(TREES_REJECTED))
def test_tree_decoder_rejects(kind):
    node, why = TREES_REJECTED[kind]
    with pytest.raises(RemoteError, match=why):
        Decoder({"k1": np.zeros(3)}, max_nodes=100).decode(node)


def test_tree_decoder_values():
    node = {"t": "tuple", "v": [{"t": "float", "v": 2}, {"t": "npscalar", "k": "s1"}, {"t": "arr", "k": "k1"},
                                {"t": "obj", "id": 4, "type": "Evil\x1b[31m", "callable": True, "tid": "x" * 50},
                                {"t": "dict", "v": [[{"t": "none"}, {"t": "str", "v": "s"}]]}]}
    value = Decoder({"k1": np.zeros(3), "s1": np.asarray(np.int8(3))}).decode(node)
    assert value == (2.0, 3, ("array", "k1"), ("handle", 4, "Evil[31m", True, None), {None: "s"})
    assert type(value[0]) is float and type(value[1]) is np.int8


# ---------------------------------------------------------------------------------------------------------------
# the kernel side, served in-process
# ---------------------------------------------------------------------------------------------------------------

def test_served_round_trip_mutation_and_identity(session):
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    out = RemoteName(session, "scale")(x, k=np.float32(3))
    assert type(out) is np.ndarray and out.dtype == np.float64 and np.allclose(out, 3 * x)
    m = RemoteName(session, "Multiply")()
    a, b, d_out = np.arange(1.0, 5.0), np.arange(-1.0, 3.0), np.full(4, 2.0)
    np.testing.assert_allclose(m.forward(a, b), a * b)
    d_x, d_y = m.backward(d_out)
    np.testing.assert_array_equal(d_out, 2.0 * b)               # the change to d_out reaches the grader's array
    assert d_x is d_out                                          # ... which came back as itself
    cached_x, cached_y = m.cache
    assert cached_x is a and cached_y is b                      # identity of tracked arrays is preserved
    s = RemoteName(session, "Sum")()
    x = np.arange(1.0, 5.0)
    assert s.forward(x) == 10.0
    assert s.backward(np.float64(3.0)) is x and np.all(x == 3.0)    # overwrote x, cached by the earlier call
    x[0] = 100.0                                                 # the grader's own change is uploaded
    assert s.cache[0] == 100.0
    m.params = {"W": np.zeros((2, 2)), "lr": 0.1}
    assert m.params["lr"] == 0.1 and m.params["W"].shape == (2, 2)
    n = session.calls
    for _ in range(5):
        m.forward(a, b)
    assert session.calls - n == 5                                # a method of a known class costs one call
    assert repr(m) == "<remote Multiply>"


def test_large_arrays_cross_once_and_sync_only_when_changed(session):
    """A 4 MB array the grader sent is sent once; it comes back only when the kernel changed it (bits, NaN
    payloads and signed zeros included), into the grader's own array; the grader's changes go up once."""
    sizes = []
    exchange = session.channel.exchange

    def counted(payload, deadline):
        reply = exchange(payload, deadline)
        sizes.append((sum(len(p) for p in payload), len(reply)))
        return reply
    session.channel.exchange = counted
    x = np.random.default_rng(0).standard_normal((500, 1000))
    RemoteName(session, "keep")(x)
    for _ in range(3):
        assert RemoteName(session, "scale")(1.0) == 2.0
    assert sizes[0][0] > x.nbytes and all(up < 10_000 and down < 10_000 for up, down in sizes[1:])
    before = x.copy()
    RemoteName(session, "bump")()
    assert x.nbytes < sizes[-1][1] < 2 * x.nbytes                   # synced back once ...
    assert x[123, 456] == before[123, 456] + 1.0 and np.signbit(x[0, 1])
    assert x[0, 2:3].view(np.uint64)[0] == 0x7FF8000000000001     # ... bit for bit
    RemoteName(session, "scale")(1.0)
    assert sizes[-1][1] < 10_000                                    # and not again
    x[7, 7] = 3.5
    RemoteName(session, "scale")(1.0)
    assert sizes[-1][0] > x.nbytes                                  # the grader's change goes up once
    assert session.server.tracked[session.key_of(x)][0][7, 7] == 3.5
    RemoteName(session, "scale")(1.0)
    assert sizes[-1][0] < 10_000


def test_served_values_errors_and_handles(session):
    value = RemoteName(session, "shapes")()
    assert value["t"] == (1.5, -2, True, None, "s") and type(value["t"][0]) is np.float32
    assert value[3][0].shape == (0, 3) and value[3][1].dtype == np.complex128
    matrix, odd_dict, obj = RemoteName(session, "unplain")()
    assert all(isinstance(v, client.RemoteObject) for v in (matrix, odd_dict, obj))
    found = session.resolve(["answer", "weights", "np", "Multiply", "missing_name"])
    assert found["answer"] == ("value", 41.5) and found["np"] == ("module", "numpy")
    assert found["Multiply"] == ("remote", None) and found["missing_name"] == ("missing", None)
    np.testing.assert_array_equal(found["weights"][1], np.arange(6.0).reshape(2, 3))
    with pytest.raises(NotImplementedError) as info:
        RemoteName(session, "todo")()
    assert str(info.value) == "NotImplementedError: not done yet" and isinstance(info.value, RemoteError)
    with pytest.raises(RemoteError, match="^SystemExit: 3$"):
        RemoteName(session, "leave")()
    with pytest.raises(NameError):
        RemoteName(session, "nope")()
    with pytest.raises(TypeError, match="cannot send a object"):
        RemoteName(session, "scale")(object())
    session.session_reset()
    with pytest.raises(LookupError, match="stale remote handle"):
        obj()
    assert RemoteName(session, "scale")(2) == 4


def test_reply_over_the_cap_is_a_clean_remote_error(session):
    """The kernel side answers "too large" instead of sending a reply the grader would refuse (16 MiB)."""
    assert wire.MAX_REPLY_BYTES == 16 << 20 and session.max_result_bytes == wire.MAX_REPLY_BYTES
    with pytest.raises(RemoteError, match=r"^result too large \(\d+ bytes > 16777216\)$") as info:
        RemoteName(session, "big")()
    assert not isinstance(info.value, client.ReplyTooLarge)     # answered by the kernel side, not discarded
    assert RemoteName(session, "scale")(1.5) == 3.0


def test_forged_oversized_frame_is_discarded_whole(session):
    """A forged reply over the cap is read and dropped (never kept in memory) and the channel stays in step."""
    original = rpc_server.encode_reply
    rpc_server.encode_reply = lambda header, arrays, limit: b" " * (17 << 20)
    try:
        with pytest.raises(client.ReplyTooLarge, match=r"result too large \(17825792 bytes > 16777216\)"):
            RemoteName(session, "scale")(1.0)
    finally:
        rpc_server.encode_reply = original
    assert RemoteName(session, "scale")(2.0) == 4.0


def test_kernel_side_request_too_large_for_the_grader_cap():
    ns: dict = {}
    exec(STUDENT, ns)
    small = LocalSession(ns, max_result_bytes=1000)
    try:
        with pytest.raises(RemoteError, match=r"result too large \(\d+ bytes > 1000\)"):
            RemoteName(small, "scale")(np.zeros(200))
        assert RemoteName(small, "scale")(np.zeros(20)).shape == (20,)
    finally:
        small.channel.close()


def test_interrupt_stops_a_looping_call(session):
    result = []
    caller = threading.Thread(target=lambda: result.append(_call_catching(RemoteName(session, "spin"))))
    caller.start()
    deadline = time.monotonic() + 10
    while not rpc_serving._busy and time.monotonic() < deadline:
        time.sleep(0.01)
    rpc_serving.interrupt()
    caller.join(10)
    assert isinstance(result[0], RemoteError) and str(result[0]) == "KeyboardInterrupt"
    assert RemoteName(session, "scale")(1) == 2 and not rpc_serving._busy


def _call_catching(fn):
    try:
        return fn()
    except RemoteError as e:
        return e


def test_channel_out_of_step_is_broken(session):
    session.kernel_end.sendall(b"stray")
    with pytest.raises(client.ChannelBroken, match="unexpected data"):
        RemoteName(session, "scale")(1)


def test_channel_closed_by_the_kernel_is_broken(session):
    session.kernel_end.shutdown(socket.SHUT_RDWR)
    session.thread.join(5)
    with pytest.raises(client.ChannelBroken, match="closed by the kernel"):
        RemoteName(session, "scale")(1)


# ---------------------------------------------------------------------------------------------------------------
# the bootstrap: the package files become the kernel side, in a fresh interpreter
# ---------------------------------------------------------------------------------------------------------------

def test_version_is_the_hash_of_the_whole_in_sandbox_package():
    files = sorted((REPO / "grading" / "in_sandbox").glob("*.py"))
    assert list(kernel_handle.SHIPPED) == [f.name for f in files]       # every module, no list kept by hand
    sources = "".join(f.read_text() for f in files)
    assert client.VERSION == in_sandbox.version(kernel_handle.SHIPPED)
    assert client.VERSION == hashlib.sha256(sources.encode()).hexdigest()[:16]


def test_bootstrap_installs_the_package_files_and_binds_no_student_name(tmp_path):
    path = str(tmp_path / "boot.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    code = kernel_handle.bootstrap_code(path, {"version": client.VERSION, "max_reply": wire.MAX_REPLY_BYTES})
    script = textwrap.dedent(f"""
        import sys
        ns = {{"__name__": "__main__", "double": lambda x: 2 * x}}
        exec({code!r}, ns)
        print(sorted(k for k in ns if k != "__builtins__"),
              sorted(m for m in sys.modules if m.split(".")[0] in ("grading", "_grading_in_sandbox")), flush=True)
        sys.stdin.read()
        """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=""))
    try:
        listener.settimeout(30)
        conn, _ = listener.accept()
        channel = client.Channel(conn, wire.MAX_REPLY_BYTES, lambda: None)
        hello = channel.receive(time.monotonic() + 30)
        assert wire.split_payload(hello)[0] == {"hello": client.VERSION}
        names = proc.stdout.readline()
        # the package and only the modules the kernel side imports (the warm template's stay unloaded)
        assert names.strip() == ("['__name__', 'double'] ['_grading_in_sandbox', '_grading_in_sandbox.rpc_server', "
                                 "'_grading_in_sandbox.rpc_serving', '_grading_in_sandbox.wire']")
        request = wire.encode_payload({"op": wire.OP_CALL, "ref": {"kind": "name", "name": "double"},
                                       "args": {"t": "tuple", "v": [{"t": "int", "v": 21}]},
                                       "kwargs": {"t": "dict", "v": []}, "upload": [], "drop": []}, {})
        header, _ = decode.decode_reply(channel.exchange(request, time.monotonic() + 30))
        assert header["value"] == {"t": "int", "v": 42}
    finally:
        proc.stdin.close()
        proc.wait(10)
        listener.close()
