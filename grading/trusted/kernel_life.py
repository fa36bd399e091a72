"""The student kernel's life while one notebook runs -- deaths, restarts, its time budget -- and every problem note,
kept here.

Kernel death
------------
A segfault, ``os._exit``, the memory or CPU limit, or a kill after a timeout in ordinary cell N gives that cell the
error output ``"DeadKernelError: kernel died in cell N: <reason>"``. Later test cells still run; their RPCs fail
cleanly (:class:`DeadKernel`), so they earn zero for whatever needed the dead kernel.

Restart after a death (decision)
--------------------------------
The grader then starts a fresh sandboxed kernel and silently re-runs every earlier ordinary code cell except the
ones that killed a kernel, so the remaining cells and tests see the state they need; the dying cell keeps its error
output and gets a note saying so. By default (``TrustedExecute.max_kernel_restarts = -1``) it does so after every
death, as long as the notebook's time budget lasts. Rationale: an exploratory cell that exceeds the sandbox's
(deliberately tight) memory limit, or an answer that hangs ignoring interrupts, should not zero every later,
independent exercise -- a second such item once used up the single restart and cost the honest items after it
their points -- while a bare restart without replay is useless (all definitions gone). What restarts and replays
cost is bounded by the time budget below, not by a count. Replay runs only code that already ran in the same
sandbox, so it grants no new capability; outputs of replayed cells are discarded; if the kernel dies again during
the replay or a restart limit set in ``max_kernel_restarts`` is spent, the rest of the notebook runs against the
dead kernel as described above. ``max_kernel_restarts = 0`` gives strict "a dead kernel stays dead" semantics.

Time budget per notebook
------------------------
Cells and RPC calls have their own timeouts, but N cells each sleeping just under the cell timeout once held a
worker for N times that. ``TrustedExecute.notebook_timeout`` (wall-clock seconds from the notebook's start: kernel
starts, restarts, replays and every cell) bounds the whole notebook: each cell's timeout, each test cell's RPC
budget and each kernel start is cut to what is left. When it runs out, the kernel is killed, the cell that was
running gets a ``NotebookTimeoutError`` output, every later cell is not run and gets one too (a test cell with an
error output scores 0), and one note says where it happened.

Problem notes
-------------
Whatever went wrong -- a kernel death, a timeout, a MemoryError, truncated or lost output, a test cell missing from
the notebook, a duplicate that sanitizing stripped, a forged test cell -- becomes a one-line note ("cell 12
(sum_backward): timed out after 60 s") in ``nb.metadata[METADATA_KEY][PROBLEMS]`` (grading/course.py), which
nbgrader keeps in the autograded notebook and grading/cli/report.py shows per student. The key is always
overwritten, so a submission cannot plant notes of its own.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
import typing as t

from nbformat import NotebookNode

from grading.course import METADATA_KEY, PROBLEMS
from grading.rpc.client import RemoteError
from grading.trusted.gradebook import grade_id
from grading.trusted.outputs import error_output, stream_output

MAX_NOTES = 50
MAX_NOTE = 300
BUDGET_ERROR = "NotebookTimeoutError"


class KernelHandle(t.Protocol):
    """What the grader reads of the student's kernel: a grading.rpc.client.RemoteKernel, or a DeadKernel."""

    alive: bool
    dead_reason: str | None
    deadline: float | None       # absolute monotonic budget for RPCs (a test cell's), or None

    def ping(self, timeout: float) -> bool: ...
    def mark_dead(self, reason: str) -> None: ...
    def resolve(self, names: list[str]) -> dict[str, tuple[str, t.Any]]: ...
    def session_reset(self) -> None: ...
    def close(self) -> None: ...


class DeadKernel:
    """Stands in for the RemoteKernel when no kernel is running: every RPC fails cleanly."""

    alive = False

    def __init__(self, reason: str):
        self.dead_reason = reason
        self.deadline: float | None = None

    def _fail(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        raise RemoteError(f"kernel died ({self.dead_reason})")

    call = getattr = setattr = resolve = _fail

    def ping(self, timeout: float) -> bool:
        return False

    def mark_dead(self, reason: str) -> None:
        """Already dead: the first reason stays."""

    def session_reset(self) -> None:
        pass

    def close(self) -> None:
        pass


def death_output(index: int, reason: str, suffix: str = "") -> NotebookNode:
    """The one "kernel died" output: ``DeadKernelError: kernel died in cell N: <reason><suffix>``."""
    return error_output("DeadKernelError", f"kernel died in cell {index + 1}: {reason}{suffix}")


class KernelLife:
    """Deaths, restarts and problem notes of one notebook's run (see the module docstring)."""

    def __init__(self, nb: NotebookNode, max_restarts: int, log: logging.Logger, budget_s: float = 0.0):
        """max_restarts: -1 = no limit but the time budget; budget_s: the notebook's seconds from now, 0 = none."""
        self.nb, self.max_restarts, self.log = nb, max_restarts, log
        self.budget_s = budget_s
        self.deadline = time.monotonic() + budget_s if budget_s > 0 else math.inf
        self.out_of_time_in: int | None = None         # the cell where the time budget ran out
        self.notes: list[str] = []
        self.ran: list[int] = []              # ordinary cells run in the current kernel (replayed after a restart)
        self.culprits: set[int] = set()       # cells that killed a kernel (never replayed)
        self.restarts = 0
        self.death: tuple[int, str] | None = None    # (cell index, reason) of the death to report
        self.gave_up = False                          # no more restarts: the kernel stays dead
        self.disk_full_noted = False

    def note(self, index: int | None, text: str) -> None:
        """Record a one-line note for the grade report (and the log): "cell 12 (sum_backward): <text>"."""
        where = ""
        if index is not None and 0 <= index < len(self.nb.cells):
            cell = self.nb.cells[index]
            label = grade_id(cell)
            label = label if label is not None else cell.get("id")
            label = label if isinstance(label, str) and label.isprintable() and len(label) <= 64 else None
            where = f"cell {index + 1}" + (f" ({label})" if label else "") + ": "
        note = (where + text)[:MAX_NOTE]
        if note not in self.notes and len(self.notes) < MAX_NOTES:
            self.notes.append(note)
            self.log.warning("TrustedExecute: %s", note)

    def cell_notes(self, index: int, outputs: list, timed_out_after: float | None, truncated_at: str | None,
                   disk_full_mb: int | None = None) -> None:
        """Notes about an ordinary cell that just ran: timeout, truncated output, MemoryError, and (once) the scratch
        directory's disk quota of `disk_full_mb` MiB used up."""
        if disk_full_mb is not None and not self.disk_full_noted:
            self.note(index, f"the scratch directory's disk quota ({disk_full_mb} MiB) is full")
            self.disk_full_noted = True
        if timed_out_after is not None:
            self.note(index, f"timed out after {timed_out_after} s")
        if truncated_at is not None:
            self.note(index, f"output truncated (more than {truncated_at})")
        if any(o.get("output_type") == "error" and o.get("ename") == "MemoryError" for o in outputs):
            self.note(index, "out of memory (MemoryError)")

    def write_notes(self) -> None:
        """Into the notebook's metadata, replacing whatever the submission carried there."""
        self.nb.metadata[METADATA_KEY] = {PROBLEMS: list(self.notes)}

    def died(self, index: int, reason: str, kernel: KernelHandle | None) -> NotebookNode:
        """The kernel died in cell `index`: record it, and return the cell's error output."""
        self.culprits.add(index)
        if self.death is None:
            self.death = (index, reason)
            self.note(index, f"kernel died ({reason})")
        if kernel is not None:
            kernel.mark_dead(reason)
        return death_output(index, reason)

    def died_between_cells(self, reason: str, kernel: KernelHandle | None) -> None:
        """E.g. a background thread killed it: the last cell that ran is blamed."""
        self.died(self.ran[-1] if self.ran else -1, reason, kernel)

    def not_run(self, index: int) -> NotebookNode:
        """The output of an ordinary cell that was not run because the kernel is dead."""
        where, reason = self.death if self.death else (index, "not running")
        return death_output(where, reason, "; this cell was not run")

    def stand_in(self) -> DeadKernel:
        """The kernel handle for test cells while no kernel runs."""
        return DeadKernel(f"in cell {self.death[0] + 1}: {self.death[1]}" if self.death else "not running")

    def restart_plan(self) -> list[int] | None:
        """After a death: the cells to re-run in a fresh kernel, or None when no restart is left."""
        index, reason = self.death
        if 0 <= self.max_restarts <= self.restarts:
            self.gave_up = True
            self.note(None, f"the kernel stayed dead after cell {index + 1} (no restarts left): later cells were "
                            "not run")
            return None
        self.restarts += 1
        self.log.warning("TrustedExecute: kernel died in cell %d (%s); restarting and re-running earlier cells",
                         index + 1, reason)
        replay = [i for i in self.ran if i not in self.culprits]
        self.ran = []
        return replay

    def restart_failed(self, error: Exception) -> DeadKernel:
        index = self.death[0]
        self.log.error("TrustedExecute: could not restart the kernel: %s", error)
        self.note(None, f"the kernel could not be restarted after cell {index + 1}: later cells were not run")
        self.gave_up = True
        return DeadKernel(f"could not restart after the death in cell {index + 1}")

    def restarted(self, replay_ok: bool, kernel: KernelHandle) -> None:
        """A fresh kernel re-ran the earlier cells (`replay_ok`) or died again doing so."""
        index, reason = self.death
        note = ("a fresh kernel was started and the earlier cells were re-run" if replay_ok else
                "a fresh kernel was started, but it died again while re-running the earlier cells")
        culprit = self.nb.cells[index] if 0 <= index < len(self.nb.cells) else None
        if culprit is not None and culprit.cell_type == "code":
            culprit.outputs.append(stream_output("stdout", f"\n[grader: {note}]\n"))
        if replay_ok:
            self.death = None
            return
        self.gave_up = True
        self.note(index, "the fresh kernel died again while re-running earlier cells: later cells were not run")
        self.death = (index, reason + "; it died again while re-running earlier cells")
        kernel.mark_dead(self.death[1])

    # ------------------------------------------------------------------ the notebook's time budget

    def time_left(self) -> float | None:
        """Seconds left of the notebook's budget (never below 0), or None without a budget."""
        return None if self.deadline == math.inf else max(0.0, self.deadline - time.monotonic())

    def out_of_time(self) -> bool:
        return self.out_of_time_in is not None or time.monotonic() >= self.deadline

    def ran_out(self, index: int, kernel: KernelHandle | None) -> None:
        """The budget ran out in (or just before) cell `index`, and the kernel has been killed: note it once."""
        if self.out_of_time_in is not None:
            return
        self.out_of_time_in, self.gave_up = index, True
        self.note(index, f"the notebook's time budget of {self.budget_s:g} s ran out: the kernel was stopped and "
                         "later cells were not run")
        if kernel is not None:
            kernel.mark_dead(f"the notebook's time budget of {self.budget_s:g} s ran out")

    def cut_short(self) -> NotebookNode:
        """The output added to the cell that was running when the budget ran out."""
        return error_output(BUDGET_ERROR, f"the notebook's time budget of {self.budget_s:g} s ran out during this "
                                          "cell; the kernel was stopped")

    def not_run_in_time(self) -> NotebookNode:
        """The output of every cell after the one where the budget ran out (a test cell scores 0 with it)."""
        return error_output(BUDGET_ERROR, f"not run: the notebook's time budget of {self.budget_s:g} s ran out in "
                                          f"cell {self.out_of_time_in + 1}")


class TimeBudgeted:
    """nbclient hooks and helpers, mixed into TrustedExecute, that keep one notebook within ``self.life``'s time
    budget: each cell's timeout and each kernel start are cut to what is left; when nothing is left the kernel is
    killed at once and every later cell is marked not run."""

    life: KernelLife
    km: t.Any          # the SandboxedKernelManager, or None
    rk: t.Any          # the kernel handle, or None

    timeout: int | None     # nbclient's cell timeout (seconds; None, 0 or negative: none)

    def budgeted_timeout(self, cell: NotebookNode) -> float | None:
        """nbclient's ``timeout_func``: the cell timeout, cut to what is left of the notebook's time budget."""
        timeout = self.timeout if self.timeout and self.timeout > 0 else None
        left = self.life.time_left()
        return timeout if left is None else max(0.01, min(timeout or left, left))

    async def _start_kernel_in_time(self) -> bool:
        """Start a kernel within what is left of the notebook's time budget; False if the budget ran out first
        (the next cell then stops everything)."""
        try:
            await asyncio.wait_for(self._start_kernel(), self.life.time_left())
        except asyncio.TimeoutError:
            if not self.life.out_of_time():
                raise
            return False
        return True

    def _out_of_time(self, cell: NotebookNode, index: int) -> bool:
        """Before a cell: if the notebook's time budget is spent, kill the kernel (once) and mark the cell not run."""
        if not self.life.out_of_time():
            return False
        if self.life.out_of_time_in is None:
            self._stop_now(index)
        cell.outputs = [self.life.not_run_in_time()]
        return True

    def _stop_now(self, index: int) -> None:
        """The budget ran out in cell `index`: kill the kernel at once."""
        if self.km is not None:
            self.km.kill_now()
        self.life.ran_out(index, self.rk)

    def _cut_short(self, cell: NotebookNode, index: int) -> None:
        """The budget ran out while `cell` ran: it scores nothing, and nothing runs after it."""
        self._stop_now(index)
        cell.outputs.append(self.life.cut_short())
