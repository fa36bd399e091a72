"""``TrustedExecute``: nbgrader's ``Execute`` step, rebuilt so that grades are decided where student code cannot
reach. nbgrader_config.py puts it first in ``c.Autograde.autograde_preprocessors``, in place of ``Execute``.

Stock nbgrader runs every cell -- the student's answers *and* the instructor's test cells -- in one kernel and reads
each test cell's verdict from that kernel's outputs, so student code that runs first can decide them (monkeypatch
numpy or the checker, swallow errors, print a number) with the grader's privileges. Instead:

* **Ordinary cells** (answers and read-only setup cells) run through nbclient in a sandboxed kernel
  (grading/sandbox/kernel_manager.py) whose one writable directory holds copies of the support files, never
  instructor-only ones (grading/sandbox/scratch.py).
* **Autograder test cells** -- as the gradebook says, with the gradebook's source (grading/trusted/gradebook.py)
  -- never run in the kernel: the grader runs them itself with its trusted checker and reaches student objects
  over RPC (grading/trusted/runner.py), and writes their outputs.
* Kernel output is validated and capped (grading/trusted/outputs.py); per-cell timeouts interrupt the kernel and
  kill it if it does not answer within ``interrupt_grace``; deaths, restarts, the notebook's time budget
  (``notebook_timeout``) and the one-line problem notes for the grade report are kept in
  grading/trusted/kernel_life.py.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import typing as t

from nbclient.exceptions import DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat import NotebookNode
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute
from traitlets import Bool, Float, Integer, Type, Unicode

from grading.rpc.client import RemoteKernel
from grading.sandbox.kernel_manager import SandboxedKernelManager, SandboxError
from grading.sandbox.scratch import ScratchBuilder
from grading.trusted.gradebook import claims_test, grade_id, sources_of_test_cells, structure_notes
from grading.trusted.kernel_life import KernelLife, TimeBudgeted
from grading.trusted.modules import TrustedModules
from grading.trusted.outputs import (LOST_OUTPUT, BudgetedOutputs, OutputBudget, error_output, language_info,
                                     stream_output)
from grading.trusted.runner import TrustedCellSetup, check_records, run_test_cell
from grading.trusted.seed_salt import SeedSalt

__all__ = ["TrustedExecute"]


class TrustedExecute(TimeBudgeted, BudgetedOutputs, Execute):
    """nbgrader ``Execute`` replacement: ordinary cells in a sandboxed kernel, test cells in the grader."""

    kernel_manager_class = Type(SandboxedKernelManager, klass="jupyter_client.manager.KernelManager",
                                help="Kernel manager for the student kernel (must be sandboxed).").tag(config=True)
    raise_on_iopub_timeout = Bool(False, help="Never abort grading because the kernel's output went missing.").tag(
        config=True)
    record_timing = Bool(False, help="Timing metadata would come from (untrusted) kernel messages.").tag(config=True)

    rpc_timeout = Float(30.0, help="Seconds for one call into the student kernel from a test cell.").tag(config=True)
    test_cell_timeout = Float(120.0, help="Total seconds of RPCs one test cell may spend.").tag(config=True)
    interrupt_grace = Float(5.0, help="After a timeout interrupt, seconds the kernel has to respond before it is "
                                      "killed.").tag(config=True)
    max_output_bytes_per_cell = Integer(1 << 20, help="Output kept per cell (characters of text/data).").tag(
        config=True)
    max_output_bytes_per_notebook = Integer(10 << 20, help="Output kept per notebook.").tag(config=True)
    max_kernel_restarts = Integer(-1, help="Fresh kernels (with replay of earlier cells) after kernel deaths; -1 = "
                                           "as many as notebook_timeout allows (grading/trusted/kernel_life.py).").tag(
        config=True)
    notebook_timeout = Float(600.0, help="Wall-clock seconds for the whole notebook (kernel starts, restarts, every "
                                         "cell); when they run out the kernel is stopped and the remaining cells "
                                         "score nothing. 0 = no budget.").tag(config=True)

    course_root = Unicode("", help="Course directory (default: CourseDirectory.root).").tag(config=True)

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        # nbgrader's Execute.__init__ forces kernel_manager_class=AsyncKernelManager: never accept that here; its
        # keyword would also beat c.TrustedExecute.kernel_manager_class, which is therefore applied last.
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(*args, **kwargs)
        self.kernel_manager_class = self.config.TrustedExecute.get("kernel_manager_class", self.kernel_manager_class)
        self.timeout_func = self.budgeted_timeout       # each cell's timeout within the notebook's time budget

    def preprocess(self, nb: NotebookNode, resources: t.Any = None, km: t.Any = None):
        """Execute the notebook; returns (nb, resources) like ExecutePreprocessor. `km` is ignored: student code
        only ever runs in a fresh kernel of this step's own sandboxed kernel manager."""
        self.nb, self.km, self.kc = nb, None, None
        self.reset_execution_trackers()
        self.resources = resources if resources is not None else {}
        info = self.resources.get("nbgrader") or {}
        coursedir = CourseDirectory(config=self.config)
        paths = {"course_root": os.path.abspath(self.course_root or coursedir.root), "source_directory":
                 coursedir.source_directory, "release_directory": coursedir.release_directory,
                 "assignment_id": info.get("assignment") or ""}
        self.tests = sources_of_test_cells(info, coursedir.course_id or "default_course", self.log)
        seeds = SeedSalt(parent=self)   # hidden inputs depend on the submission (grading/trusted/seed_salt.py)
        modules = TrustedModules(paths, seeds.module_settings(seeds.salt(nb, paths["course_root"])), parent=self)
        self.setup = TrustedCellSetup(modules, output_limit=self.max_output_bytes_per_cell,
                                      time_budget=self.test_cell_timeout)
        self.budget = OutputBudget(self.max_output_bytes_per_cell, self.max_output_bytes_per_notebook)
        self.life = KernelLife(nb, self.max_kernel_restarts, self.log, self.notebook_timeout)
        self.rk: t.Any = None
        support_dir = (self.resources.get("metadata") or {}).get("path") or ""
        self.scratch = ScratchBuilder(parent=self).build(support_dir, paths)
        try:
            run_sync(self._async_run)()
        finally:
            self.scratch.remove()
        self.life.write_notes()
        return self.nb, self.resources

    async def _async_run(self) -> None:
        for index, text in structure_notes(self.nb, self.tests):
            self.life.note(index, text)
        try:
            await self._start_kernel_in_time()
            for index, cell in enumerate(self.nb.cells):
                if cell.cell_type != "code":
                    continue
                if grade_id(cell) in self.tests:
                    await self._ensure_kernel()
                    if not self._out_of_time(cell, index):
                        self._run_test_cell(cell, index, self.tests[grade_id(cell)])
                elif claims_test(cell):
                    cell.outputs = [error_output("UnverifiedTestCell", "this cell is marked as an autograder test "
                                                 "but is not one of the gradebook's test cells; it was not run")]
                    self.life.note(index, "marked as an autograder test but not one of the gradebook's; not run")
                elif cell.source.strip():
                    await self._ensure_kernel()
                    if not self._out_of_time(cell, index):
                        await self._run_ordinary_cell(cell, index)
        finally:
            await self._stop_kernel()

    # ------------------------------------------------------------------ the kernel

    def create_kernel_manager(self):
        if not (isinstance(self.kernel_manager_class, type)
                and issubclass(self.kernel_manager_class, SandboxedKernelManager)):
            raise SandboxError(f"TrustedExecute.kernel_manager_class must be a SandboxedKernelManager, not "
                               f"{self.kernel_manager_class!r}; refusing to run student code unsandboxed")
        self.kernel_name = "python3"
        self.km = self.kernel_manager_class(kernel_name="python3", config=self.config, scratch_dir=self.scratch.work)
        return self.km

    async def _start_kernel(self) -> None:
        self.create_kernel_manager()
        await self.async_start_new_kernel(cwd=self.scratch.work)
        await self.async_start_new_kernel_client()
        reply = await self.async_wait_for_reply(await ensure_async(self.kc.kernel_info()))
        self.nb.metadata["language_info"] = language_info(reply)
        self.rk = RemoteKernel(self.km, self.scratch.work, timeout=self.rpc_timeout,
                               interrupt_grace=self.interrupt_grace)

    async def _stop_kernel(self) -> None:
        if self.rk is not None:
            self.rk.close()
            self.rk = None
        km, kc, self.km, self.kc = self.km, self.kc, None, None
        try:
            if kc is not None:
                await ensure_async(kc.stop_channels())
            if km is not None:
                if await ensure_async(km.is_alive()):
                    await ensure_async(km.shutdown_kernel(now=True))
                await ensure_async(km.cleanup_resources())
        except Exception as e:      # never let clean-up hide the notebook's results
            self.log.warning("TrustedExecute: kernel clean-up failed: %s", e)
            if km is not None:
                km.kill_now()

    def _alive(self) -> bool:
        return self.rk is not None and self.rk.alive

    def _death_reason(self) -> str | None:
        """Why the kernel is dead after a cell (killing it when it ignored a timeout's interrupt), or None."""
        if not self._alive():
            return self.km.describe_exit()
        if self.timed_out and not self.rk.ping(self.interrupt_grace):
            self.km.kill_now()
            return f"it did not stop within {self.interrupt_grace:.0f} s after the {self.timeout} s timeout " \
                   "and was killed"
        return None

    async def _ensure_kernel(self) -> None:
        """Before each cell: if the kernel died, restart it and replay earlier cells (within the restart limit and
        the notebook's time budget)."""
        if self.life.gave_up or self.life.out_of_time() or self._alive():
            return
        if self.life.death is None:
            self.life.died_between_cells(self.km.describe_exit(), self.rk)
        replay = self.life.restart_plan()
        if replay is None:
            return
        await self._stop_kernel()
        try:
            if not await self._start_kernel_in_time():
                return
        except Exception as e:
            self.rk = self.life.restart_failed(e)
            return
        replay_ok = await self._replay(replay)
        if not self.life.out_of_time():         # else the next cell stops everything
            self.life.restarted(replay_ok, self.rk)

    async def _replay(self, cells: list[int]) -> bool:
        """Re-run `cells` silently in the fresh kernel (their outputs are discarded); False if it died again."""
        for i in cells:
            original = self.nb.cells[i]
            try:
                await self.async_execute_cell(copy.deepcopy(original), i, execution_count=original.get(
                    "execution_count"))
                self.life.ran.append(i)
            except Exception:
                return False
            finally:
                self.nb.cells[i] = original
            if self.life.out_of_time() or self._death_reason() is not None:
                return False
            if not self.idle_seen:
                await self._reconnect_output()
        return True

    async def _reconnect_output(self) -> None:
        """A fresh kernel client after the kernel's output went missing: libzmq drops a connection that delivers
        a message above ZMQ_MAXMSGSIZE and does not reconnect it, so every later cell would lose its output."""
        if self.kc is None or not self._alive():
            return
        old, self.kc = self.kc, self.km.client()
        try:
            await ensure_async(old.stop_channels())
            await ensure_async(self.kc.start_channels())
            await ensure_async(self.kc.wait_for_ready(timeout=max(2.0, self.interrupt_grace)))
        except Exception as e:
            self.log.warning("TrustedExecute: could not reconnect to the kernel's output: %s", e)
        self.kc.allow_stdin = False

    # ------------------------------------------------------------------ cells

    def _run_test_cell(self, cell: NotebookNode, index: int, source: str) -> None:
        self.code_cells_executed += 1
        cell.execution_count = self.code_cells_executed
        kernel = self.rk if self._alive() else self.life.stand_in()
        left = self.life.time_left()
        setup = self.setup if left is None else dataclasses.replace(self.setup, time_budget=min(
            self.setup.time_budget, left))
        cell.outputs = run_test_cell(source, kernel, setup, filename=f"<test cell {grade_id(cell)}>",
                                     execution_count=cell.execution_count, records=check_records(cell))
        if self.life.out_of_time():
            self._cut_short(cell, index)
        elif self.life.death is None and self.rk is not None and not self._alive():
            self.life.died(index, self.rk.dead_reason or "died", self.rk)      # a test cell's RPC killed it
        self.budget.end_cell(cell.outputs)

    async def _run_ordinary_cell(self, cell: NotebookNode, index: int) -> None:
        if not self._alive():
            cell.outputs = [self.life.not_run(index)]
            return
        try:
            await self.async_execute_cell(cell, index, execution_count=self.code_cells_executed + 1)
        except DeadKernelError:
            self._cell_notes(cell, index)
            cell.outputs.append(self.life.died(index, self.km.describe_exit(), self.rk))
            return
        except Exception as e:
            cell.outputs.append(error_output(type(e).__name__, f"the grader could not run this cell: {e}"))
        else:
            if not self.timed_out:
                self.life.ran.append(index)     # replayed after a restart (timed-out cells are not)
        if self.timed_out and self.life.out_of_time():       # cut short by the notebook's budget
            self._cut_short(cell, index)
            self.budget.end_cell(cell.outputs)
            return
        self._cell_notes(cell, index)
        reason = self._death_reason()
        if reason is not None:
            cell.outputs.append(self.life.died(index, reason, self.rk))
            return
        if not self.idle_seen:
            if not self.timed_out:
                cell.outputs.append(stream_output("stdout", LOST_OUTPUT))
                self.life.note(index, "some output was lost (a message over the size limit)")
            await self._reconnect_output()
        self.budget.end_cell(cell.outputs)

    def _cell_notes(self, cell: NotebookNode, index: int) -> None:
        self.life.cell_notes(index, cell.outputs, self.timeout if self.timed_out else None, self.budget.truncated_at,
                             self.scratch.quota_mb if self.scratch.full() else None)

    # ------------------------------------------------------------------ nbclient hooks

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        self.budget.start_cell()
        self.idle_seen = self.timed_out = False
        return await super().async_execute_cell(cell, cell_index, execution_count=execution_count,
                                                store_history=store_history)

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None):
        self.timed_out = True     # nbclient has no public hook for this (its error reply is the kernel's to forge)
        return await super()._async_handle_timeout(timeout, cell)
