"""Budgets of one notebook, tried from real student cells (bubblewrap kernels, a real gradebook, nbgrader's grade
logic): the wall-clock budget per notebook, restarts after every hang within it, and the scratch directory's disk
quota (grading/trusted/kernel_life.py, grading/sandbox/quota.py, grading/plugins/trusted_execute.py)."""
import json
import os
import shutil
import subprocess
import sys
import time

import nbformat
import pytest
from test_sandbox import (GOOD_DOUBLE, GOOD_RELU, TESTS, _cell, grades, make_course, outputs_of,
                          temporary_gradebook)
from traitlets.config import Config

from grading.course import METADATA_KEY, PROBLEMS
from grading.plugins.trusted_execute import TrustedExecute
from grading.sandbox import quota

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

TEST_DOUBLE = TESTS[0]                                                              # 2 points
TEST_TRIPLE = _cell("test", "assert np.allclose(triple(np.arange(3.0)), [0.0, 3.0, 6.0])", "test_triple", 2)
TEST_RATE = _cell("test", "assert learning_rate == 0.5", "test_rate", 1)
TEST_RELU = TESTS[1]                                                                # 1 point
SETUP = _cell("code", "import numpy as np\nimport nn\nlearning_rate = 0.5")
TRIPLE = _cell("solution", "def triple(x):\n    return 3 * x", "answer_triple")
GOOD_RELU_CELL = _cell("solution", GOOD_RELU, "answer_relu")

# An answer that hangs in the grader's call and ignores the interrupt (KeyboardInterrupt) sent after the timeout:
# the grader has to kill the kernel.
HANGING_DOUBLE = """
def double(x):
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass
"""
# An answer cell that defines its class, then hangs ignoring SIGINT: killed after the cell timeout.
HANGING_RELU = """
class ReLU:
    def forward(self, x):
        return np.maximum(x, 0)

import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
"""


@pytest.fixture(scope="module")
def gradebook():
    with temporary_gradebook([TEST_DOUBLE, TEST_RELU, TEST_TRIPLE, TEST_RATE, _cell("solution", "", "answer_double"),
                              _cell("solution", "", "answer_relu"), TRIPLE]) as db:
        yield db


def grade(tmp_path, gradebook, cells, **sections):
    """One notebook through TrustedExecute; `sections`: {"TrustedExecute": {trait: value}, "ScratchBuilder": ...}.
    Returns (graded notebook, its problem notes, seconds taken)."""
    course, nb, res = make_course(tmp_path, gradebook, cells)
    cfg = Config()
    cfg.CourseDirectory.root = str(course)
    cfg.TrustedExecute.iopub_timeout = 2
    for section, traits in sections.items():
        for key, value in traits.items():
            setattr(cfg[section], key, value)
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    start = time.monotonic()
    nb, _ = TrustedExecute(config=cfg).preprocess(nb, res)
    return nb, nb.metadata[METADATA_KEY][PROBLEMS], time.monotonic() - start


def our_mounts():
    with open("/proc/mounts") as f:
        return [line for line in f if quota.base_prefix() in line]


def error_texts(cell):
    return [f"{o['ename']}: {o['evalue']}" for o in cell.outputs if o.get("output_type") == "error"]


def test_notebook_budget_stops_many_sleeping_cells(tmp_path, gradebook):
    """Cells each sleeping just under the cell timeout (3 s) once cost their sum; the 12 s budget ends them."""
    sleepers = [_cell("code", "import time\ntime.sleep(2.5)\nprint('slept')") for _ in range(8)]
    cells = [SETUP, _cell("solution", GOOD_DOUBLE, "answer_double"), TEST_DOUBLE, *sleepers, GOOD_RELU_CELL, TEST_RELU,
             TRIPLE, TEST_TRIPLE, TEST_RATE]
    out, notes, seconds = grade(tmp_path, gradebook, cells,
                                TrustedExecute={"timeout": 3, "notebook_timeout": 12, "interrupt_grace": 1})
    assert seconds < 12 + 5, seconds                    # the budget, plus killing the kernel and cleaning up
    assert grades(out) == {"test_double": 2.0, "test_relu": 0, "test_triple": 0, "test_rate": 0}
    cut = next(i for i, c in enumerate(out.cells) if "ran out during this cell" in str(c.outputs))
    assert 3 <= cut < 3 + len(sleepers)                 # in one of the sleeping cells
    assert error_texts(out.cells[cut])[-1] == ("NotebookTimeoutError: the notebook's time budget of 12 s ran out "
                                               "during this cell; the kernel was stopped")
    not_run = ("NotebookTimeoutError: not run: the notebook's time budget of 12 s ran out in cell "
               f"{cut + 1}")
    later = [c for c in out.cells[cut + 1:] if c.cell_type == "code"]
    assert len(later) >= 4 and all(error_texts(c) == [not_run] and len(c.outputs) == 1 for c in later)
    assert outputs_of(out, "test_triple") == [{"output_type": "error", "ename": "NotebookTimeoutError",
                                               "evalue": not_run.split(": ", 1)[1], "traceback": [not_run]}]
    assert all(c.outputs[0]["text"] == "slept\n" for c in out.cells[3:cut])      # finished sleepers ran normally
    assert len(notes) == 1 and notes[0].startswith(f"cell {cut + 1} (") and notes[0].endswith(
        "the notebook's time budget of 12 s ran out: the kernel was stopped and later cells were not run"), notes
    assert our_mounts() == []


def test_budget_spent_while_the_kernel_starts(tmp_path, gradebook):
    """Nothing runs, every test cell scores 0 with the one-line reason, and one note says so."""
    cells = [SETUP, _cell("solution", GOOD_DOUBLE, "answer_double"), TEST_DOUBLE, GOOD_RELU_CELL, TEST_RELU, TRIPLE,
             TEST_TRIPLE, TEST_RATE]
    out, notes, seconds = grade(tmp_path, gradebook, cells, TrustedExecute={"notebook_timeout": 0.2})
    not_run = "NotebookTimeoutError: not run: the notebook's time budget of 0.2 s ran out in cell 1"
    assert all(error_texts(c) == [not_run] and len(c.outputs) == 1 for c in out.cells)
    assert grades(out) == {"test_double": 0, "test_relu": 0, "test_triple": 0, "test_rate": 0}
    assert notes == [f"cell 1 ({out.cells[0].id}): the notebook's time budget of 0.2 s ran out: the kernel was "
                     "stopped and later cells were not run"]
    assert seconds < 10, seconds


def test_every_hang_gets_a_restart_so_later_honest_items_keep_their_points(tmp_path, gradebook):
    """Two hanging items (one in the grader's call, one in its answer cell) cost only themselves: the kernel is
    killed and restarted after each, and the honest items after them get exact full points."""
    cells = [SETUP, _cell("solution", HANGING_DOUBLE, "answer_double"), TEST_DOUBLE,
             _cell("solution", HANGING_RELU, "answer_relu"), TEST_RELU, TRIPLE, TEST_TRIPLE, TEST_RATE]
    out, notes, seconds = grade(tmp_path, gradebook, cells, TrustedExecute={
        "timeout": 3, "rpc_timeout": 2, "interrupt_grace": 1})
    assert grades(out) == {"test_double": 0, "test_relu": 0, "test_triple": 2.0, "test_rate": 1.0}
    assert outputs_of(out, "test_double")[0]["text"] == "double raised RemoteError\n" * 2   # the calls failed
    assert "fresh kernel was started and the earlier cells were re-run" in out.cells[3].outputs[-1]["text"]
    assert notes == ["cell 3 (test_double): kernel died (killed after a call did not finish within 2 s)",
                     "cell 4 (answer_relu): timed out after 3 s",
                     "cell 4 (answer_relu): kernel died (it did not stop within 1 s after the 3 s timeout and was "
                     "killed)"]                           # and no "no restarts left"
    assert seconds < 60, seconds


@pytest.mark.skipif(os.geteuid() != 0, reason="the disk quota is a tmpfs mount, which needs root")
def test_disk_filler_stays_within_the_quota_and_later_items_still_grade(tmp_path, gradebook):
    quota_mb = 16
    filler = _cell("code", f"""
        import errno, os
        os.mkdir("junk")
        written, error = 0, None
        try:
            while written < {4 * quota_mb} << 20:      # a safety stop, should the quota not hold
                with open(f"junk/{{written >> 20}}.bin", "wb") as f:
                    f.write(b"x" * (1 << 20))
                written += 1 << 20
        except OSError as e:
            error = errno.errorcode[e.errno]
        st = os.statvfs(".")
        print(written >> 20, error, (st.f_blocks * st.f_frsize) >> 20)
        """)
    cells = [SETUP, _cell("solution", GOOD_DOUBLE, "answer_double"), filler, TEST_DOUBLE, GOOD_RELU_CELL, TEST_RELU,
             TRIPLE, TEST_TRIPLE, TEST_RATE]
    out, notes, _ = grade(tmp_path, gradebook, cells, ScratchBuilder={"disk_quota_mb": quota_mb})
    written_mb, error, size_mb = out.cells[2].outputs[0]["text"].split()
    assert error == "ENOSPC" and int(written_mb) <= quota_mb and int(size_mb) == quota_mb
    assert grades(out) == {"test_double": 2.0, "test_relu": 1.0, "test_triple": 2.0, "test_rate": 1.0}
    assert [n for n in notes if "disk quota" in n] == [f"cell 3 ({out.cells[2].id}): the scratch directory's disk "
                                                      f"quota ({quota_mb} MiB) is full"]
    assert our_mounts() == []           # unmounted: the files are gone, from memory too


@pytest.mark.skipif(os.geteuid() != 0, reason="the disk quota is a tmpfs mount, which needs root")
def test_mounts_of_a_killed_grader_are_swept(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    base = tmp_path / f"grading-{int(gone.stdout)}-killed"
    (base / "scratch").mkdir(parents=True)
    quota.mount_tmpfs(str(base / "scratch"), 1, 100)
    (base / "scratch" / "left.bin").write_bytes(b"x" * 1000)
    mine = tmp_path / f"{quota.base_prefix()}alive"
    (mine / "scratch").mkdir(parents=True)
    quota.mount_tmpfs(str(mine / "scratch"), 1, 100)
    try:
        quota.sweep_stale(str(tmp_path))
        assert not base.exists()                        # unmounted and removed: its grader is gone
        assert (mine / "scratch").is_mount()            # this process's own mount stays
    finally:
        quota.unmount(str(mine / "scratch"))
        quota.unmount(str(base / "scratch"))


# ------------------------------------------------ the grader's own work on student data (issue 21.5), fast ----

def test_reports_read_a_notebook_only_within_its_size_and_nesting(tmp_path):
    from grading.reporting import bounded_read
    path = tmp_path / "backprop.ipynb"
    path.write_text('{"cells": [], "metadata": {"x": "[[[[[[" }, "nbformat": 4, "nbformat_minor": 5}')
    assert bounded_read.nesting_depth(path.read_bytes()) == 2 and bounded_read.read_json(path)["cells"] == []
    path.write_text('{"deep": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match=r"^backprop.ipynb nests 100001 levels deep \(over 100\): not read$"):
        bounded_read.read_json(path)
    with pytest.raises(ValueError, match="is 0 MB .over 0 MB.: not read"):
        bounded_read.read_json(path, max_bytes=1000)
    os.mkfifo(tmp_path / "pipe.ipynb")
    with pytest.raises(OSError):                        # never opened for reading as a notebook, never blocks
        bounded_read.read_json(tmp_path / "pipe.ipynb")


def test_markup_over_the_cleaning_budget_is_shown_as_plain_text_in_linear_time():
    from grading.plugins.clean_html import CleanStudentHtml, markup_depth
    assert markup_depth("<table><tr><td>1<br><img src=x></td></tr></table>") == 3
    nested = "<div>" * 5000 + "x" + "</div>" * 5000
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(nested), nbformat.v4.new_markdown_cell("**fine**"),
        nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output(
            "display_data", data={"text/html": "<span>" * 5000, "text/plain": "x"})])])
    start = time.monotonic()
    nb, _ = CleanStudentHtml().preprocess(nb, {"nbgrader": {}})
    assert time.monotonic() - start < 5            # bleach on this: about 2 s per 85 KB, quadratic
    assert nb.cells[0].source.startswith("```text\n<div><div>") and "<strong>fine</strong>" in nb.cells[1].source
    assert nb.cells[2].outputs[0].data == {"text/plain": "x", "text/html": "<pre>" + "&lt;span&gt;" * 5000 + "</pre>"}
    assert nb.metadata[METADATA_KEY][PROBLEMS] == [
        "markup over the cleaning limits (256 KB, 100 levels deep, 2048 KB in all) shown as plain text: cell 0, 2"]


def test_a_feedback_page_shows_at_most_its_budget_of_a_cell():
    from grading.plugins.page_budget import BoundStudentCells
    big = "a = 1\n" * 30_000
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(big, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="y\n" * 100_000)]),
        nbformat.v4.new_markdown_cell("<b>" * 40_000), nbformat.v4.new_code_cell("small = 1")])
    nb, _ = BoundStudentCells().preprocess(nb, {})
    code, markdown, small = nb.cells
    assert len(code.source) < 66 << 10 and code.source.endswith(
        "# [grader: this cell is 176 KB; the feedback page shows its first 64 KB. The whole cell is in the "
        "submitted notebook.]")
    assert len(code.outputs[0].text) < 66 << 10 and "of output; shown: the first 64 KB" in code.outputs[0].text
    assert markdown.source.startswith("```text\n<b><b>") and len(markdown.source) < 66 << 10
    assert small.source == "small = 1"
