"""Security tests of the autograding execution layer (grading/sandbox/kernel_manager.py, grading/rpc/client.py,
grading/plugins/trusted_execute.py).

Everything here uses real bubblewrap-sandboxed kernels, a real gradebook and nbgrader's own grade logic; no mocks.
"""
import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from traitlets.config import Config

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grading.plugins.trusted_execute import TrustedExecute  # noqa: E402
from grading.rpc.client import RemoteError, RemoteKernel, RemoteName  # noqa: E402
from grading.rpc.decode import load_npy_untrusted  # noqa: E402
from grading.sandbox.kernel_manager import SandboxedKernelManager, SandboxError  # noqa: E402
from grading.sandbox.provisioners import SandboxedProvisioner, WarmProvisioner  # noqa: E402
from grading.sandbox.warm_kernels import WarmKernelManager  # noqa: E402
from grading.trusted.kernel_life import DeadKernel, KernelHandle  # noqa: E402
from grading.trusted.runner import free_names  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def run_async(coro):
    from jupyter_core.utils import run_sync

    async def wrapper():
        return await coro
    return run_sync(wrapper)()


# ---------------------------------------------------------------------------------------------------------------
# One sandboxed kernel shared by the sandbox and RPC tests
# ---------------------------------------------------------------------------------------------------------------

class Sandbox:
    def __init__(self, tmp: Path, km_class=SandboxedKernelManager, config=None):
        self.scratch = tmp / "scratch"
        self.scratch.mkdir()
        (self.scratch / "helper_data.txt").write_text("support file\n")
        self.outside = tmp / "host-secret"
        self.outside.mkdir()
        self.secret = self.outside / "answers.txt"
        self.secret.write_text("the hidden answer is 42\n")
        os.environ["GRADER_ONLY_SECRET"] = "instructor-token"
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        t0 = time.monotonic()
        self.km = km_class(kernel_name="python3", scratch_dir=str(self.scratch), memory_limit_mb=1024,
                           config=config or Config())
        run_async(self.km.start_kernel())
        assert type(self.km.provisioner) is (WarmProvisioner if km_class is WarmKernelManager else SandboxedProvisioner)
        self.rk = RemoteKernel(self.km, str(self.scratch), timeout=20)
        self.rk.wait_ready(60)
        self.start_time = time.monotonic() - t0

    def run(self, code, timeout=30):
        """Execute code in the kernel; returns (stdout text, error name or None)."""
        kc = self.km.blocking_client()
        kc.start_channels()
        try:
            out, err = [], []

            def hook(msg):
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                elif msg["msg_type"] == "error":
                    err.append(msg["content"]["ename"])
            kc.execute_interactive(textwrap.dedent(code), timeout=timeout, output_hook=hook)
            return "".join(out), (err[0] if err else None)
        finally:
            kc.stop_channels()

    def close(self):
        self.rk.close()
        run_async(self.km.shutdown_kernel(now=True))
        self.listener.close()
        os.environ.pop("GRADER_ONLY_SECRET", None)


def warm_config():
    """Warm kernels (grading/sandbox/warm_kernels.py) forked from a template that preloaded numpy and ipykernel."""
    config = Config()
    config.WarmKernels.preload = ["numpy", "ipykernel.kernelapp"]
    return config


# Every sandbox test holds for a cold kernel (bwrap per kernel) and a warm one (forked from the template).
@pytest.fixture(scope="module", params=["cold", "warm"])
def sandbox(request):
    tmp = Path(tempfile.mkdtemp(prefix="test-sandbox-"))
    box = (Sandbox(tmp) if request.param == "cold" else Sandbox(tmp, WarmKernelManager, warm_config()))
    if request.param == "warm" and os.geteuid() == 0:
        assert box.run("print(open('/proc/1/comm').read())")[0].strip() == "warm-init"
    try:
        yield box
    finally:
        box.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_missing_bwrap_is_a_clear_error(tmp_path):
    km = SandboxedKernelManager(kernel_name="python3", scratch_dir=str(tmp_path), bwrap_path="/nonexistent/bwrap")
    with pytest.raises(SandboxError) as info:
        run_async(km.start_kernel())
    assert "\n" not in str(info.value) and "bwrap" in str(info.value)


def test_no_network(sandbox):
    out, err = sandbox.run(f"""
        import socket
        for addr in [("127.0.0.1", {sandbox.port}), ("1.1.1.1", 53), ("8.8.8.8", 443)]:
            try:
                socket.create_connection(addr, timeout=3).close()
                print("CONNECTED", addr)
            except OSError as e:
                print("refused", addr, type(e).__name__)
        """)
    assert err is None
    assert "CONNECTED" not in out and out.count("refused") == 3


def test_cannot_read_host_files_outside_scratch(sandbox):
    out, err = sandbox.run(f"""
        import os
        for path in [{str(sandbox.secret)!r}, {str(REPO / 'nn.py')!r}, {str(REPO / 'source')!r}, "/etc/shadow"]:
            try:
                with open(path) as f:
                    print("GOT-CONTENT", path, f.read()[:20])
            except OSError as e:
                print("denied", path, type(e).__name__)
        print("work:", sorted(os.listdir({str(REPO)!r})))
        print("env:", sorted(os.environ))
        """)
    assert err is None
    assert "GOT-CONTENT" not in out and "42" not in out and out.count("denied") == 4
    assert "work: ['.venv']" in out                     # the course directory is not mounted, only the venv
    assert "GRADER_ONLY_SECRET" not in out


def test_cannot_write_outside_scratch_but_sees_scratch(sandbox):
    out, err = sandbox.run(f"""
        import os
        print(open("helper_data.txt").read().strip(), os.getcwd())
        for path in [{str(sandbox.outside / 'planted.txt')!r}, {str(Path(sys.prefix) / 'planted.txt')!r},
                     "/usr/planted.txt", "/etc/planted.txt"]:
            try:
                open(path, "w").write("x")
                print("WROTE", path)
            except OSError as e:
                print("denied", type(e).__name__)
        open("/tmp/private.txt", "w").write("only in the sandbox")
        open("made_in_kernel.txt", "w").write("ok")
        """)
    assert err is None
    assert f"support file {sandbox.scratch}" in out
    assert "WROTE" not in out and out.count("denied") == 4
    assert not (sandbox.outside / "planted.txt").exists() and not (Path(sys.prefix) / "planted.txt").exists()
    assert (sandbox.scratch / "made_in_kernel.txt").read_text() == "ok"
    assert not Path("/tmp/private.txt").exists()


def test_privileges_limits_and_environment(sandbox):
    out, err = sandbox.run("""
        import os, resource
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))
        print("uid", os.getuid(), "cap", status["CapEff"].strip(), "nnp", status["NoNewPrivs"].strip())
        print("as", resource.getrlimit(resource.RLIMIT_AS)[0] >> 20, "blas", os.environ["OPENBLAS_NUM_THREADS"],
              os.environ["OMP_NUM_THREADS"], os.environ["MKL_NUM_THREADS"], os.environ["MPLBACKEND"])
        print("pids", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
        """)
    assert err is None
    assert "cap 0000000000000000" in out and "nnp 1" in out
    if os.geteuid() == 0:
        assert "uid 0 " not in out
    assert "as 1024 blas 1 1 1 Agg" in out
    pids = json.loads(out.split("pids ")[1].strip())
    assert max(pids) < 50           # own PID namespace: no host process is visible


def test_memory_cap(sandbox):
    out, err = sandbox.run("""
        import numpy as np
        try:
            big = np.ones(2 * 2**30 // 8)     # 2 GiB > the 1 GiB cap of this kernel
            print("ALLOCATED")
        except MemoryError:
            print("MemoryError")
        """)
    assert "ALLOCATED" not in out and ("MemoryError" in out or err == "MemoryError")
    assert sandbox.run("print(1 + 1)")[0].strip() == "2"     # the kernel survives


# ---------------------------------------------------------------------------------------------------------------
# RPC
# ---------------------------------------------------------------------------------------------------------------

KERNEL_DEFS = """
import numpy as np

class Multiply:
    def forward(self, x, y):
        self.cache = (x, y)
        return x * y

    def backward(self, d_out):
        x, y = self.cache
        d_x = y                  # aliasing bug: the *= below modifies the cached input y
        d_x *= d_out
        return d_x, d_out * x

def scale(x, k=2.0):
    return x * k

def clobber(x):
    x[0] = -1.0
    return None

def todo():
    raise NotImplementedError("not done yet")

def spin():
    while True:
        pass

answer = 41.5
weights = np.arange(6.0).reshape(2, 3)
"""


def test_remote_round_trip_and_mutation(sandbox):
    sandbox.run(KERNEL_DEFS)
    rk = sandbox.rk
    rk.session_reset()
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    out = RemoteName(rk, "scale")(x, k=np.float32(3))
    assert type(out) is np.ndarray and out.dtype == np.float64 and np.allclose(out, 3 * x)
    f32 = RemoteName(rk, "scale")(x.astype(np.float32))
    assert f32.dtype == np.float32

    # in-place mutation of an argument is written back into the caller's array
    y = np.ones(3)
    assert RemoteName(rk, "clobber")(y) is None
    assert y[0] == -1.0

    # ... including mutation of an array cached by an earlier call (backward modifies forward's input)
    m = RemoteName(rk, "Multiply")()
    a, b = np.arange(1.0, 5.0), np.arange(-1.0, 3.0)
    b_sent = b.copy()
    np.testing.assert_allclose(m.forward(a, b), a * b)
    d_x, d_y = m.backward(np.full(4, 2.0))
    assert not np.array_equal(b, b_sent)           # the grader sees that its input was modified
    cached_x, cached_y = m.cache
    assert cached_x is a                           # identity of tracked arrays is preserved
    m.params = {"W": np.zeros((2, 2)), "lr": 0.1}
    assert m.params["lr"] == 0.1 and m.params["W"].shape == (2, 2)

    values = rk.resolve(["answer", "weights", "np", "Multiply", "missing_name"])
    assert values["answer"] == ("value", 41.5)
    assert values["np"] == ("module", "numpy")
    assert values["Multiply"][0] == "remote" and values["missing_name"][0] == "missing"
    np.testing.assert_array_equal(values["weights"][1], np.arange(6.0).reshape(2, 3))

    with pytest.raises(RemoteError) as info:
        RemoteName(rk, "todo")()
    assert str(info.value) == "NotImplementedError: not done yet"
    assert isinstance(info.value, NotImplementedError)
    assert not hasattr(m, "no_such_attribute")

    n = rk.calls
    t0 = time.monotonic()
    for _ in range(20):
        m.forward(a, b)
    per_call = (time.monotonic() - t0) / 20
    assert rk.calls - n == 20                       # a method call on a known class costs one RPC
    print(f"\nsandboxed kernel start {sandbox.start_time:.2f} s; RPC round trip {per_call * 1000:.1f} ms")
    rk.session_reset()


def test_remote_timeout_interrupts(sandbox):
    sandbox.run(KERNEL_DEFS)
    rk = sandbox.rk
    old = rk.timeout
    rk.timeout = 1.0
    try:
        with pytest.raises(RemoteError, match="TimeoutError"):
            RemoteName(rk, "spin")()
    finally:
        rk.timeout = old
    assert rk.alive
    assert RemoteName(rk, "scale")(1.5) == 3.0


# Each forgery is the body of a function that replaces the kernel side's reply encoder: given the reply header,
# its arrays and the grader's cap, it returns the payload of the reply frame (wire.py's layout).
FORGERIES = {
    "not json": "return payload(b'{not json')",
    "wrong structure": "return payload({'ok': True, 'value': {'t': 'bogus'}, 'sync': [], 'npy': []})",
    "deep nesting": "return payload(b'[' * 100000 + b']' * 100000)",
    "a million nodes": "return payload({'ok': True, 'value': {'t': 'list', 'v': [{'t': 'none'}] * 1_000_001}, "
                       "'sync': [], 'npy': []})",
    "pickled object array": "return with_member(npy(np.array([{}, 1], dtype=object), allow_pickle=True))",
    "lying npy header": (
        "h = io.BytesIO(); np.lib.format.write_array_header_1_0(h, {'descr': '<f8', 'fortran_order': False, "
        "'shape': (10**12,)}); return with_member(h.getvalue() + b'x' * 64)"),
    "member table past the frame": "return payload({'ok': True, 'value': {'t': 'none'}, 'sync': [], "
                                   "'npy': [['k1', 10**9]]})",
    "member key outside the pattern": "return with_member(npy(np.zeros(3)), key='../k1')",
    "trailing bytes": "return payload({'ok': True, 'value': {'t': 'none'}, 'sync': [], 'npy': []}) + b'junk'",
    "oversized": "return b' ' * (17 << 20)",
}


@pytest.mark.parametrize("kind", list(FORGERIES))
def test_forged_result_is_a_clean_remote_error(sandbox, kind):
    """Student code replaces the kernel side's reply encoder: the grader must not crash, hang or unpickle."""
    sandbox.run(KERNEL_DEFS)
    rk = sandbox.rk
    RemoteName(rk, "scale")(1.0)         # kernel side installed
    out, err = sandbox.run(f"""
        import sys, io, json, struct, numpy as np
        helper = sys.modules["_grading_in_sandbox.rpc_server"]
        original_encode = helper.encode_reply
        def payload(header, *members):
            head = header if isinstance(header, bytes) else json.dumps(header).encode()
            return struct.pack('!I', len(head)) + head + b''.join(members)
        def npy(arr, **kwargs):
            buf = io.BytesIO(); np.save(buf, arr, **kwargs); return buf.getvalue()
        def with_member(data, key='k1'):
            return payload({{'ok': True, 'value': {{'t': 'arr', 'k': key}}, 'sync': [], 'npy': [[key, len(data)]]}},
                           data)
        def forged(header, arrays, limit):
            {FORGERIES[kind]}
        helper.encode_reply = forged
        """)
    assert err is None, out
    try:
        t0 = time.monotonic()
        with pytest.raises(RemoteError) as info:
            RemoteName(rk, "scale")(np.ones(3))
        assert time.monotonic() - t0 < 10
        assert "\n" not in str(info.value) and str(info.value).startswith(("malformed result", "result "))
    finally:
        sandbox.run("helper.encode_reply = original_encode")
    assert RemoteName(rk, "scale")(2.0) == 4.0      # and the next call works again
    assert rk.alive


def test_npy_loader_rejects_object_arrays_and_lying_headers():
    import io
    for arr in (np.array([{}, 1], dtype=object), np.zeros(2, dtype=[("a", "<f8")]), np.array(["text"])):
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=True)
        with pytest.raises(RemoteError, match="unsupported dtype"):
            load_npy_untrusted(buf.getvalue(), 1 << 20)
    buf = io.BytesIO()
    np.save(buf, np.zeros(1000))
    with pytest.raises(RemoteError, match="size does not match"):
        load_npy_untrusted(buf.getvalue()[:-1], 1 << 20)
    with pytest.raises(RemoteError, match="too large"):
        load_npy_untrusted(buf.getvalue(), 1000)
    np.testing.assert_array_equal(load_npy_untrusted(buf.getvalue(), 1 << 20), np.zeros(1000))


def test_free_names():
    src = "import gradcheck\nx = x + 1\ngradcheck.grade('a', Multiply)\ndef f():\n    return tol + len(W)\n"
    assert free_names(src) == {"x", "Multiply", "tol", "len", "W"}


# ---------------------------------------------------------------------------------------------------------------
# TrustedExecute on hand-made nbgrader notebooks
# ---------------------------------------------------------------------------------------------------------------

GRADECHECK = '''
"""Trusted checker used by the test notebooks."""
import numpy as np
import nn

def score_double(double):
    """1 point per correct case; returns the points (partial credit)."""
    points = 0.0
    for x in (np.arange(3.0), np.array([[1.5, -2.0]])):
        try:
            if np.allclose(double(x), 2 * x):
                points += 1.0
        except Exception as e:
            print("double raised", type(e).__name__)
    return points

def check_layer(cls):
    layer = cls()
    x = np.arange(1.0, 4.0)
    x_sent = x.copy()
    out = layer.forward(x)
    assert isinstance(out, np.ndarray) and np.allclose(out, nn.relu(x)), "wrong forward"
    assert np.array_equal(x, x_sent), "modified its input"
    return "layer ok"
'''

NN = "import numpy as np\n\ndef relu(x):\n    return np.maximum(x, 0)\n"


def _cell(kind, source, grade_id=None, points=None):
    if kind == "markdown":
        return new_markdown_cell(source)
    cell = new_code_cell(textwrap.dedent(source).strip())
    if kind == "solution":
        cell.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "grade_id": grade_id,
                                     "schema_version": 3}
    elif kind == "test":
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": grade_id,
                                     "points": points, "schema_version": 3}
    return cell


@contextlib.contextmanager
def temporary_gradebook(cells):
    """A gradebook (removed afterwards) holding the test and answer cells among `cells`, for assignment "ps1",
    notebook "nb"; building one costs seconds (nbgrader asks alembic for its schema version), so each test module
    builds one and each test gets a copy (make_course)."""
    tmp = Path(tempfile.mkdtemp(prefix="test-gradebook-"))
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{old_path}"   # nbgrader runs alembic
    try:
        _fill_gradebook(f"sqlite:///{tmp / 'gradebook.db'}", cells, "ps1", "nb")
    finally:
        os.environ["PATH"] = old_path
    try:
        yield tmp / "gradebook.db"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def gradebook_template():
    """One gradebook holding the test cells (TESTS) and answer cells used by every notebook below."""
    with temporary_gradebook([*TESTS, _cell("solution", "", "answer_double"),
                              _cell("solution", "", "answer_relu")]) as db:
        yield db


def make_course(tmp: Path, template_db: Path, cells, assignment="ps1", notebook="nb"):
    """A course dir with source/ (trusted checker), the gradebook, and a student's notebook in autograded/."""
    course = tmp / "course"
    src = course / "source" / assignment
    src.mkdir(parents=True)
    (src / "gradcheck.py").write_text(GRADECHECK)
    (course / "nn.py").write_text(NN)
    rel = course / "release" / assignment
    rel.mkdir(parents=True)
    (rel / "gradcheck.py").write_text(GRADECHECK)
    (src / "secret_solutions.py").write_text("ANSWER = 'instructor only'\n")   # in source/, not in release/
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    shutil.copy(template_db, course / "gradebook.db")
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    student_dir = course / "autograded" / "alice" / assignment
    student_dir.mkdir(parents=True)
    for f in ("gradcheck.py", "secret_solutions.py"):         # what nbgrader autograde copies next to it
        shutil.copy(src / f, student_dir / f)
    (student_dir / "nn.py").write_text(NN)
    resources = {"nbgrader": {"student": "alice", "assignment": assignment, "notebook": notebook,
                              "db_url": db_url},
                 "metadata": {"path": str(student_dir)}}
    return course, nb, resources


def _fill_gradebook(db_url, cells, assignment, notebook):
    from nbgrader.api import Gradebook
    from nbgrader.utils import compute_checksum

    with Gradebook(db_url) as gb:
        gb.add_assignment(assignment)
        gb.add_notebook(notebook, assignment)
        for cell in cells:
            md = cell.metadata.get("nbgrader")
            if not md:
                continue
            gid = md["grade_id"]
            if md["grade"]:
                gb.add_grade_cell(gid, notebook, assignment, max_score=md["points"], cell_type="code")
            if md["solution"]:
                gb.add_solution_cell(gid, notebook, assignment)
            gb.add_source_cell(gid, notebook, assignment, cell_type="code", locked=md["locked"],
                               source=cell.source, checksum=compute_checksum(cell))


def autograde(course, nb, resources, **traits):
    cfg = Config()
    cfg.CourseDirectory.root = str(course)
    cfg.TrustedExecute.timeout = traits.pop("timeout", 10)
    cfg.TrustedExecute.iopub_timeout = traits.pop("iopub_timeout", 2)
    for key, value in traits.pop("kernel_config", {}).items():
        setattr(cfg.SandboxedKernelManager, key, value)
    for key, value in traits.items():
        setattr(cfg.TrustedExecute, key, value)
    pp = TrustedExecute(config=cfg)
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb, _ = pp.preprocess(nb, resources)
    return nb


def grades(nb):
    from nbgrader.utils import determine_grade, is_grade, is_solution
    return {c.metadata["nbgrader"]["grade_id"]: determine_grade(c)[0] for c in nb.cells
            if is_grade(c) and not is_solution(c)}


def outputs_of(nb, grade_id):
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return [{k: v for k, v in o.items() if k != "execution_count"} for o in cell.outputs]


TESTS = [
    _cell("test", """
        import gradcheck
        gradcheck.score_double(double)
        """, "test_double", 2),
    _cell("test", """
        from gradcheck import check_layer
        print(check_layer(ReLU))
        """, "test_relu", 1),
    _cell("test", """
        assert np.isclose(learning_rate, 0.5), "learning_rate should be 0.5"
        assert secret_check() == "instructor only"
        """, "test_vars", 1),
]


def notebook(answer_double, answer_relu, extra_cells=()):
    return [
        _cell("markdown", "# Exercise"),
        _cell("code", "import numpy as np\nimport nn\nlearning_rate = 0.5"),
        _cell("solution", answer_double, "answer_double"),
        TESTS[0],
        _cell("solution", answer_relu, "answer_relu"),
        *extra_cells,
        TESTS[1],
        TESTS[2],
    ]


GOOD_DOUBLE = "def double(x):\n    return 2 * x"
BAD_DOUBLE = "def double(x):\n    return x + 1"
GOOD_RELU = "class ReLU:\n    def forward(self, x):\n        return np.maximum(x, 0)"
MUTATING_RELU = "class ReLU:\n    def forward(self, x):\n        x[x < 0] = 0\n        x[0] = 0\n        return x"


def test_trusted_execute_grades_and_outputs(tmp_path, gradebook_template):
    course, nb, res = make_course(tmp_path, gradebook_template, notebook(GOOD_DOUBLE, GOOD_RELU, [
        _cell("code", "secret_check = lambda: open('secret_solutions.py').read()"),
        _cell("code", "print(sorted(f for f in __import__('os').listdir('.') if not f.startswith('.')))"),
        _cell("code", f"import os, resource\nprint('course visible:', os.path.exists({str(tmp_path / 'course')!r}), "
                      f"'uid:', os.getuid(), 'as:', resource.getrlimit(resource.RLIMIT_AS)[0] >> 20)"),
    ]))
    out = autograde(course, nb, res, kernel_config={"memory_limit_mb": 1536})
    assert outputs_of(out, "test_double") == [{"output_type": "execute_result", "data": {"text/plain": "2.0"},
                                               "metadata": {}}]
    assert outputs_of(out, "test_relu") == [{"output_type": "stream", "name": "stdout", "text": "layer ok\n"}]
    # the instructor-only file was not copied into the sandbox, so the student helper fails -- in the test cell,
    # as a clean one-line error without source code
    err = outputs_of(out, "test_vars")
    assert len(err) == 1 and err[0]["ename"] == "RemoteError" and "FileNotFoundError" in err[0]["evalue"]
    assert err[0]["traceback"] == [f"RemoteError: {err[0]['evalue']}"]
    listing = next(c for c in out.cells if "listdir" in c.source).outputs[0]["text"]
    assert "gradcheck.py" in listing and "nn.py" in listing and "secret_solutions.py" not in listing
    sandboxed = next(c for c in out.cells if "course visible" in c.source).outputs[0]["text"]
    assert "course visible: False" in sandboxed         # the kernel really runs in the sandbox
    assert "as: 1536" in sandboxed                       # c.SandboxedKernelManager.* settings reach the kernel
    if os.geteuid() == 0:
        assert "uid: 0\n" not in sandboxed
    assert grades(out) == {"test_double": 2.0, "test_relu": 1.0, "test_vars": 0}


HOSTILE = [
    _cell("code", """
        # 1. make every numpy comparison pass and every assert a no-op
        import numpy, builtins
        numpy.allclose = lambda *a, **k: True
        numpy.array_equal = lambda *a, **k: True
        numpy.isclose = lambda *a, **k: True
        # 2. swallow all exceptions and hide tracebacks
        ip = get_ipython()
        ip.set_custom_exc((BaseException,), lambda *a, **k: None)
        ip.showtraceback = lambda *a, **k: None
        ip.showsyntaxerror = lambda *a, **k: None
        # 3. replace the checker the test cells import (student copy in the scratch dir)
        open("gradcheck.py", "w").write("def score_double(f): return 2.0\\ndef check_layer(c): return 'layer ok'\\n")
        import sys; sys.modules.pop("gradcheck", None)
        # 4. claim full marks on stdout
        print(2.0)
        import sys
        sys.stdout.write("2.0\\n")
        # 5. malformed output messages (must be dropped, not break the notebook)
        try:
            ip.display_pub.publish(data={"text/plain": 12345, "text/html": ["<b>", 3]})
            k = ip.kernel
            k.session.send(k.iopub_socket, "stream", {"name": 7, "text": None}, parent=k.get_parent())
            k.session.send(k.iopub_socket, "execute_result", {"data": "2.0", "execution_count": "x"},
                           parent=k.get_parent())
        except Exception as e:
            print("could not send junk:", type(e).__name__)
        """),
]


def test_hostile_answer_cannot_change_test_outputs(tmp_path, gradebook_template):
    honest = autograde(*make_course(tmp_path / "honest", gradebook_template, notebook(BAD_DOUBLE, MUTATING_RELU)))
    hostile = autograde(*make_course(tmp_path / "hostile", gradebook_template,
                                     notebook(BAD_DOUBLE, MUTATING_RELU, HOSTILE)))
    for gid in ("test_double", "test_relu", "test_vars"):
        assert outputs_of(hostile, gid) == outputs_of(honest, gid), gid
    assert outputs_of(honest, "test_double")[0]["data"]["text/plain"] == "0.0"
    relu = outputs_of(honest, "test_relu")
    assert relu[0]["ename"] == "AssertionError" and relu[0]["evalue"] == "modified its input"
    assert grades(hostile) == grades(honest) == {"test_double": 0.0, "test_relu": 0, "test_vars": 0}
    nbformat.validate(hostile)                      # junk kernel messages did not make the notebook invalid
    junk_cell = next(c for c in hostile.cells if "malformed output" in c.source)
    assert "could not send junk" not in json.dumps(junk_cell.outputs)


BREAK_RPC_CHANNEL = _cell("code", """
    import gc, socket
    for o in gc.get_objects():          # the grader's RPC connection (asyncio's own socketpair is unnamed)
        if isinstance(o, socket.socket) and o.family == socket.AF_UNIX and not o._closed:
            try:
                if "_rpc_" in str(o.getpeername()):
                    o.close()
            except OSError:
                pass
    secret_check = lambda: "instructor only"
    """)


def test_broken_rpc_channel_fails_that_test_cell_cleanly(tmp_path, gradebook_template):
    """Student code closes the grader's RPC socket between test cells: the next test cell fails with a one-line
    RemoteError and scores nothing, the kernel is treated as dead (a fresh one replays the earlier cells), and the
    test cells after it are graded as usual."""
    course, nb, res = make_course(tmp_path, gradebook_template, notebook(GOOD_DOUBLE, GOOD_RELU, [BREAK_RPC_CHANNEL]))
    out = autograde(course, nb, res, interrupt_grace=1.0)
    assert outputs_of(out, "test_double")[0]["data"]["text/plain"] == "2.0"
    relu = outputs_of(out, "test_relu")
    assert relu[0]["ename"] == "RemoteError" and relu[0]["traceback"] == [f"RemoteError: {relu[0]['evalue']}"]
    assert relu[0]["evalue"].startswith("kernel died (RPC channel broken: ") and "\n" not in relu[0]["evalue"]
    assert relu[1:] == [{"output_type": "stream", "name": "stdout",
                         "text": "\n[grader: a fresh kernel was started and the earlier cells were re-run]\n"}]
    assert grades(out) == {"test_double": 2.0, "test_relu": 0, "test_vars": 1.0}
    problems = out.metadata["grading"]["problems"]
    assert any("test_relu" in p and "RPC channel broken" in p for p in problems), problems


def test_forged_test_cell_metadata_is_not_trusted(tmp_path, gradebook_template):
    cells = notebook(GOOD_DOUBLE, GOOD_RELU)
    course, nb, res = make_course(tmp_path, gradebook_template, cells)
    # a student turns their own cell into an "autograder test" that would run in the grader process
    forged = _cell("test", f"open({str(tmp_path / 'pwned')!r}, 'w').write('x')\n1.0", "my_own_test", 5)
    nb.cells.insert(2, forged)
    out = autograde(course, nb, res)
    assert not (tmp_path / "pwned").exists()
    assert outputs_of(out, "my_own_test")[0]["ename"] == "UnverifiedTestCell"
    assert grades(out)["test_double"] == 2.0


def test_timeouts_huge_output_and_kernel_death(tmp_path, gradebook_template):
    cells = [
        _cell("code", "import numpy as np\nimport nn\nlearning_rate = 0.5"),                   # 1
        _cell("solution", GOOD_DOUBLE, "answer_double"),                                       # 2
        _cell("code", "import ctypes\nctypes.string_at(0)"),                                   # 3: segfault
        TESTS[0],                                                                              # 4: after restart
        _cell("code", "while True:\n    pass"),                                                # 5: timeout
        _cell("code", "print('x' * 100_000_000)"),                                             # 6: one 100 MB message
        _cell("code", "import time\nfor i in range(30):\n    print('y' * 99_999)\n    time.sleep(0.02)"),  # 7: 3 MB
        _cell("code", "print('still running', learning_rate)"),                               # 8
        _cell("code", "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"),  # 9
        _cell("code", "print('never')"),                                                       # 10: stays dead
        TESTS[2],                                                                              # 11
    ]
    course, nb, res = make_course(tmp_path, gradebook_template, cells)
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    out = autograde(course, nb, res, timeout=2, iopub_timeout=1, interrupt_grace=1.0, max_kernel_restarts=1)
    elapsed = time.monotonic() - t0
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    c = out.cells
    assert c[2].outputs[0]["ename"] == "DeadKernelError"
    assert c[2].outputs[0]["evalue"] == "kernel died in cell 3: killed by SIGSEGV (segmentation fault)"
    assert "fresh kernel" in c[2].outputs[-1]["text"]
    assert outputs_of(out, "test_double")[0]["data"]["text/plain"] == "2.0"     # state restored by the replay
    assert any(o.get("ename") == "CellTimeoutError" for o in c[4].outputs)
    assert "lost" in "".join(o.get("text", "") for o in c[5].outputs)
    assert len(json.dumps(c[5].outputs)) < 10000
    text7 = "".join(o.get("text", "") for o in c[6].outputs)
    assert "output truncated" in text7 and len(text7) < (1 << 20) + 1000
    assert c[7].outputs[0]["text"] == "still running 0.5\n"      # output works again after the lost message
    assert c[8].outputs[-1]["ename"] == "DeadKernelError" and "killed" in c[8].outputs[-1]["evalue"]
    assert c[9].outputs[0]["ename"] == "DeadKernelError"
    assert c[9].outputs[0]["evalue"].startswith("kernel died in cell 9:")
    vars_out = outputs_of(out, "test_vars")
    assert vars_out[0]["ename"] == "RemoteError" and "kernel died" in vars_out[0]["evalue"]
    assert grades(out) == {"test_double": 2.0, "test_vars": 0}
    assert growth_mb < 300, growth_mb
    assert elapsed < 30, elapsed


def test_dead_kernel_stands_in_for_the_remote_kernel(sandbox):
    """Everything the grader reads of a kernel handle exists on the real RemoteKernel and on its dead stand-in
    (which once lacked some of it)."""
    members = [n for n in vars(KernelHandle) if not n.startswith("_")] + list(KernelHandle.__annotations__)
    for handle in (sandbox.rk, DeadKernel("not running")):
        assert [n for n in members if not hasattr(handle, n)] == [], type(handle).__name__
