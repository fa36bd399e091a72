"""The five autograder test cells of one correct submission, decided in the grader against a sandboxed kernel.

    .venv/bin/python benchmarks/bench_test_cells.py [--rounds 5] [--profile N]

A sandboxed kernel (grading.sandbox) runs the reference answers; each round runs the notebook's five test cells
(self-check, then the hidden ``gradcheck.grade(..., large=True)``) through grading.trusted.runner.run_test_cell,
exactly as TrustedExecute does, and prints the round's seconds. Side by side, the same checks with the answers in
the grader's own process (no RPC, no sandbox): the floor the RPC adds to. Besides wall seconds, each round's CPU
seconds of the grader process and of the sandboxed kernel's processes: on a shared machine these vary far less.
``--profile N`` prints the N costliest functions of one more round (cProfile, cumulative, then own time).
"""
import argparse
import cProfile
import contextlib
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import nbformat  # noqa: E402

from grading.fixtures import reference_solutions as ref  # noqa: E402
from grading.rpc.client import RemoteKernel  # noqa: E402
from grading.sandbox.kernel_manager import SandboxedKernelManager  # noqa: E402
from grading.sandbox.processes import descendants  # noqa: E402
from grading.trusted.modules import TrustedModules  # noqa: E402
from grading.trusted.runner import TrustedCellSetup, run_test_cell  # noqa: E402

SOURCE = os.path.join(ROOT, "source", "ex09_backprop")
PRELUDE = "import numpy as np\nimport nn\nfrom scipy.special import softmax\n"


def test_cells() -> list[str]:
    """The notebook's autograder test cells, hidden tests included (as the gradebook stores them)."""
    nb = nbformat.read(os.path.join(SOURCE, "backprop.ipynb"), as_version=4)
    return [c.source.replace("### BEGIN HIDDEN TESTS\n", "").replace("### END HIDDEN TESTS\n", "")
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
            and not c.metadata["nbgrader"].get("solution")]


def _run(km, code):
    kc = km.blocking_client()
    kc.start_channels()
    try:
        reply = kc.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kc.stop_channels()


class InProcess:
    """A stand-in for RemoteKernel whose names resolve to the answers in this process."""

    deadline = None

    def __init__(self):
        self.ns = ref.notebook_globals()
        for source in ref.SOURCES.values():
            exec(source, self.ns)

    def session_reset(self):
        pass

    def resolve(self, names):
        return {n: ("value", self.ns[n]) if n in self.ns else ("missing", None) for n in names}


def kernel_cpu(km) -> float:
    """CPU seconds used so far by the sandboxed kernel's processes (0 without a sandbox)."""
    pid = getattr(km, "sandbox_pid", None)
    total = 0.0
    for p in ([pid, *descendants(pid)] if pid else []):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return total


def one_round(cells, kernel, setup, km=None) -> tuple[tuple[float, float, float], list]:
    """(wall, grader CPU, kernel CPU) seconds of the five cells, and their outputs."""
    t0, c0, k0 = time.perf_counter(), time.process_time(), kernel_cpu(km)
    outputs = [run_test_cell(cell, kernel, setup) for cell in cells]
    return (time.perf_counter() - t0, time.process_time() - c0, kernel_cpu(km) - k0), outputs


def _report(what: str, rounds: list) -> None:
    wall, grader, kernel = (statistics.median(r[i] for r in rounds) for i in range(3))
    print(f"five test cells, {what}: {wall:.3f} s (median of {len(rounds)}: "
          f"{', '.join(f'{r[0]:.3f}' for r in rounds)}); CPU: grader {grader:.3f} s, kernel {kernel:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0)
    args = parser.parse_args()
    from jupyter_core.utils import run_sync

    cells = test_cells()
    setup = TrustedCellSetup(TrustedModules({"course_root": ROOT, "source_directory": "source",
                                             "assignment_id": "ex09_backprop"}),
                             output_limit=100_000, time_budget=600)
    tmp = tempfile.mkdtemp(prefix="bench-cells-")
    shutil.copy(os.path.join(ROOT, "nn.py"), tmp)
    km = SandboxedKernelManager(kernel_name="python3", scratch_dir=tmp)
    run_sync(km.start_kernel)(cwd=tmp)
    rk = RemoteKernel(km, tmp, timeout=30)
    local = InProcess()
    try:
        rk.wait_ready(60)
        _run(km, PRELUDE + "".join(ref.SOURCES.values()))
        one_round(cells, rk, setup)     # warm-up: channel, imports, caches
        remote, direct = [], []
        for _ in range(args.rounds):
            seconds, outputs = one_round(cells, rk, setup, km)
            remote.append(seconds)
            seconds, expected = one_round(cells, local, setup)
            direct.append(seconds)
            assert outputs == expected, "the grades through the RPC differ from the in-process ones"
        _report("sandboxed kernel over the RPC", remote)
        _report("answers in the grader process", direct)
        if args.profile:
            prof = cProfile.Profile()
            prof.runcall(one_round, cells, rk, setup)
            text = io.StringIO()
            pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(args.profile)
            pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(args.profile)
            print(text.getvalue())
    finally:
        with contextlib.suppress(Exception):
            rk.close()
        run_sync(km.shutdown_kernel)(now=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
