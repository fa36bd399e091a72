"""gradcheck through the real proxy of the secure autograder (grading.rpc.client), not a simulation.

The answers run in a Jupyter kernel; the checker gets ``RemoteName`` handles whose calls are RPCs that return
copies of plain values (in-place changes to arrays it sent are written back). Every grade must equal the
in-process grade, sub-check by sub-check (only type names in diagnoses may differ: a non-plain result comes back
as a RemoteObject). About 15 s.
"""
import contextlib
import io
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
for path in (str(REPO / "source" / "ex09_backprop"), str(REPO)):
    if path not in sys.path:
        sys.path.insert(0, path)

remote = pytest.importorskip("grading.rpc.client")
manager = pytest.importorskip("jupyter_client.manager")

import gradcheck  # noqa: E402
import gradcheck_engine as engine  # noqa: E402
from grading.fixtures import reference_solutions as ref  # noqa: E402
from grading.fixtures.bug_catalog import BUGS  # noqa: E402

CASES = [None, "multiply_mutates_d_out", "multiply_stale_cache", "multiply_lookalike_always_equal",
         "multiply_not_implemented", "sum_overwrites_x", "sum_returns_scalar", "dot_product_outer",
         "nll_grad_mutates_y", "nll_grad_right_only_at_w0", "step_modifies_x", "step_in_place_update",
         "step_loss_after_update", "step_stub_without_raise"]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("rpc")
    env = dict(os.environ, PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    km = manager.KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(scratch), env=env)
    kc = km.blocking_client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)

    def run(code):
        reply = kc.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok", reply["content"]
    run("import numpy as np, nn\nfrom scipy.special import softmax")
    rk = remote.RemoteKernel(remote.UnsandboxedKernel(km), str(scratch), timeout=30)
    yield run, rk, km
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def _grade(item, impl):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        points = gradcheck.grade(item, impl)
    return points, [line.split()[:3] for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("name", CASES, ids=str)
def test_same_grade_through_grading_remote(kernel, name):
    run, rk, km = kernel
    assert km.is_alive(), "the kernel died"
    bug = {b.name: b for b in BUGS}.get(name)
    namespace = ref.notebook_globals()
    sources = list(ref.SOURCES.values()) + ([bug.source] if bug else [])
    for source in sources:   # the same answers on both sides
        run(source)
        exec(source, namespace)
    for item in (engine.ITEMS if bug is None else [bug.item]):
        rk.session_reset()
        direct = _grade(item, namespace[ref.NAMES[item]])
        proxied = _grade(item, remote.RemoteName(rk, ref.NAMES[item]))
        assert proxied == direct
        if bug is not None:
            assert direct[0] == bug.expected_points
