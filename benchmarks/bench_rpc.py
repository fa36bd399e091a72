"""Latency of one RPC into a sandboxed student kernel (grading.rpc.client), median of many calls.

    .venv/bin/python benchmarks/bench_rpc.py [--calls 500]

Six timings, each call timed one by one after a warm-up: a scalar function, a method call with two arrays
(the shape of a Multiply.forward), and a backward pass returning two arrays of a (7, 5) layer; then the same
two with the large case's (500, 1000) arrays (4 MB each): forward's x and y changed by the grader before each
call, so both are sent again, and backward's two new arrays coming back; and the scalar call again while the
large x and y are tracked (every call checks tracked arrays for changes on both sides).
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from grading.fixtures.reference_solutions import SOURCES  # noqa: E402
from grading.rpc.client import RemoteKernel, RemoteName  # noqa: E402
from grading.sandbox.kernel_manager import SandboxedKernelManager  # noqa: E402

DEFS = "import numpy as np\n" + SOURCES["Multiply.backward"] + "\ndef scale(x):\n    return 2 * x\n"


def _run(km, code):
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
    finally:
        kc.stop_channels()


def _median_ms(fn, calls):
    for _ in range(20):
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    calls = parser.parse_args().calls
    from jupyter_core.utils import run_sync

    tmp = tempfile.mkdtemp(prefix="bench-rpc-")
    km = SandboxedKernelManager(kernel_name="python3", scratch_dir=tmp)
    run_sync(km.start_kernel)()
    rk = RemoteKernel(km, tmp, timeout=30)
    try:
        rk.wait_ready(60)
        _run(km, DEFS)
        scale = RemoteName(rk, "scale")
        layer = RemoteName(rk, "Multiply")()
        x, y, d = np.random.rand(7, 5), np.random.rand(7, 5), np.random.rand(7, 5)
        layer.forward(x, y)
        rows = [("scalar call", lambda: scale(3), calls),
                ("forward(x, y), (7, 5) arrays", lambda: layer.forward(x, y), calls),
                ("backward(d) -> two (7, 5) arrays", lambda: layer.backward(d), calls)]
        for name, fn, n in rows:
            print(f"{name:50s} {_median_ms(fn, n):7.2f} ms per call (median of {n})")
        big = RemoteName(rk, "Multiply")()
        bx, by, bd = np.random.rand(500, 1000), np.random.rand(500, 1000), np.random.rand(500, 1000)
        big.forward(bx, by)

        def changed_forward():
            bx[0, 0], by[0, 0] = -bx[0, 0], -by[0, 0]
            return big.forward(bx, by)
        rows = [("scalar call, two (500, 1000) arrays tracked", lambda: scale(3), calls),
                ("forward(x, y), changed (500, 1000) arrays", changed_forward, min(calls, 100)),
                ("backward(d) -> two (500, 1000) arrays", lambda: big.backward(bd), min(calls, 100))]
        for name, fn, n in rows:
            print(f"{name:50s} {_median_ms(fn, n):7.2f} ms per call (median of {n})")
    finally:
        rk.close()
        run_sync(km.shutdown_kernel)(now=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
