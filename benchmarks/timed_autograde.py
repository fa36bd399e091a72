"""`nbgrader ARGS` run in this process with stopwatches around public nbgrader, nbconvert and nbclient calls:
where the time of each graded submission goes. Grading is unchanged: the wrappers only read the clock.

    python benchmarks/timed_autograde.py OUT.json autograde ex09_backprop   (in a course directory)

OUT.json gets one entry per submission, in grading order, each {"student", "seconds": {phase: seconds}} with
the phases:
- "submission": everything nbgrader did for it, from picking it up to picking up the next one (or the end);
- "init_assignment": Autograde.init_assignment (copies the submission, registers it in the gradebook);
- "sanitize: <step>" and "autograde: <step>": each preprocessor of the two passes of Autograde (its __call__);
- "execute step": the one that runs the notebook (nbconvert's ExecutePreprocessor or a subclass: nbgrader's
  Execute, the bundle's TrustedExecute), and within it, when it goes through nbclient's public calls:
  "kernel start" (NotebookClient's [async_]start_new_kernel and [async_]start_new_kernel_client),
  "kernel stop" (jupyter_client's KernelManager.shutdown_kernel),
  "ordinary cells in the kernel" and "test cells in the kernel" (NotebookClient.async_execute_cell / execute_cell,
  told apart by the cell's nbgrader metadata).
"""
import functools
import inspect
import json
import sys
import time
from collections import defaultdict

from jupyter_client.manager import AsyncKernelManager, KernelManager
from nbclient import NotebookClient
from nbconvert.preprocessors import ExecutePreprocessor, Preprocessor
from nbgrader.apps.nbgraderapp import NbGraderApp
from nbgrader.converters import Autograde
from nbgrader.converters.base import BaseConverter
from nbgrader.utils import is_grade, is_solution


class Stopwatches:
    """Seconds per phase of each submission, in the order nbgrader graded them."""

    def __init__(self):
        self.submissions, self.started, self.passes, self.depth = [], None, 0, defaultdict(int)

    def begin_submission(self, student):
        self.end_submission()
        self.submissions.append({"student": student, "seconds": defaultdict(float)})
        self.started, self.passes = time.perf_counter(), 0

    def end_submission(self):
        if self.started is not None:
            self.add("submission", time.perf_counter() - self.started)
            self.started = None

    def add(self, phase, seconds):
        if self.submissions:
            self.submissions[-1]["seconds"][phase] += seconds


WATCHES = Stopwatches()


def timed(owner, name, phase_of, group=None):
    """Replace owner.name by a wrapper adding its duration to phase_of(self, args): the outermost call of its
    group (default: its name) only, so a call through another timed one is counted once."""
    original, group = getattr(owner, name), group or name

    def record(self, args, start):
        WATCHES.depth[group] -= 1
        if WATCHES.depth[group] == 0:
            WATCHES.add(phase_of(self, args), time.perf_counter() - start)

    if inspect.iscoroutinefunction(original):
        async def wrapper(self, *args, **kwargs):
            WATCHES.depth[group] += 1
            start = time.perf_counter()
            try:
                return await original(self, *args, **kwargs)
            finally:
                record(self, args, start)
    else:
        def wrapper(self, *args, **kwargs):
            WATCHES.depth[group] += 1
            start = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                record(self, args, start)
    setattr(owner, name, functools.wraps(original)(wrapper))


def step_phase(preprocessor, _args):
    if isinstance(preprocessor, ExecutePreprocessor):
        return "execute step"
    return f"{'sanitize' if WATCHES.passes == 1 else 'autograde'}: {type(preprocessor).__name__}"


def cell_phase(_client, args):
    cell = args[0]
    return f"{'test' if is_grade(cell) and not is_solution(cell) else 'ordinary'} cells in the kernel"


def install():
    """Every stopwatch; nbgrader's converter calls mark where one submission and one pass begin."""
    original_init_destination = BaseConverter.init_destination
    original_convert = BaseConverter.convert_single_notebook

    def init_destination(self, assignment_id, student_id):
        WATCHES.begin_submission(student_id)
        return original_init_destination(self, assignment_id, student_id)

    def convert_single_notebook(self, notebook_filename):
        WATCHES.passes += 1
        return original_convert(self, notebook_filename)

    BaseConverter.init_destination = init_destination
    BaseConverter.convert_single_notebook = convert_single_notebook
    timed(Autograde, "init_assignment", lambda *_: "init_assignment")
    timed(Preprocessor, "__call__", step_phase)
    for name in ("async_start_new_kernel", "async_start_new_kernel_client", "start_new_kernel",
                 "start_new_kernel_client"):
        timed(NotebookClient, name, lambda *_: "kernel start", group="kernel start")
    for manager in (KernelManager, AsyncKernelManager):
        timed(manager, "shutdown_kernel", lambda *_: "kernel stop", group="kernel stop")
    for name in ("async_execute_cell", "execute_cell"):
        timed(NotebookClient, name, cell_phase, group="cells")


def main():
    out, argv = sys.argv[1], sys.argv[2:]
    install()
    try:
        NbGraderApp.launch_instance(argv=argv)
    finally:
        WATCHES.end_submission()
        with open(out, "w") as f:
            json.dump(WATCHES.submissions, f, indent=1)


if __name__ == "__main__":
    main()
