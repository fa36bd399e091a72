"""``TrustedExecute``: nbgrader's ``Execute`` preprocessor, rebuilt so that grades are decided where student code
cannot reach.

Use it in nbgrader_config.py in place of nbgrader's ``Execute``::

    c.Autograde.autograde_preprocessors = [
        "grading.plugins.trusted_execute.TrustedExecute", "nbgrader.preprocessors.IgnorePattern",
        "nbconvert.preprocessors.ClearMetadataPreprocessor", "nbgrader.preprocessors.LimitOutput",
        "nbgrader.preprocessors.SaveAutoGrades", "nbgrader.preprocessors.AssignLatePenalties",
        "nbgrader.preprocessors.CheckCellMetadata"]

The problem with stock nbgrader
-------------------------------
nbgrader executes every cell -- the student's answers *and* the instructor's test cells -- in one kernel and then
reads each test cell's outputs: an ``error`` output or anything on stderr means zero, a numeric ``execute_result``
means partial credit, anything else full credit. Student code runs first in that same process, so it can decide
those outputs: monkeypatch ``numpy`` or the checker module, replace ``sys.stdout``/``sys.stderr``, install a custom
exception handler (``get_ipython().set_custom_exc``) or disable ``showtraceback`` so failing tests produce no
error output, print a number, or read the hidden tests' expected values. It also runs with the grader's privileges.

What this preprocessor does instead
-----------------------------------
* **Ordinary cells** (markdown skipped; code cells, including the students' answer cells and the instructor's
  read-only setup cells) run as usual through nbclient, but in a :class:`~grading.sandbox.kernel_manager.SandboxedKernelManager`
  kernel: no network, read-only system, one writable scratch directory holding a copy of the notebook's support
  files, resource limits (see :mod:`grading.sandbox.kernel_manager`). Support files that exist in ``source/<assignment>/`` but not
  in ``release/<assignment>/`` (instructor-only files that nbgrader copies next to the submission) are not copied.
* **Autograder test cells** never run in the kernel. A cell qualifies only if the *gradebook* says so: its
  ``grade_id`` must be a locked, graded, non-solution code cell of this notebook in the database, and the source
  that is run is the gradebook's copy (student-edited metadata cannot turn a student cell into "trusted" code).
  Its source is executed in the grader process, in a fresh namespace holding ``np`` and the trusted ``gradcheck``
  and ``nn`` modules, loaded from configurable trusted directories (``source/<assignment>/`` and the course root);
  ``import gradcheck``/``import nn`` inside the cell, or inside those modules, resolve to the same trusted copies,
  never to the student's files. Every other free name the cell reads (found with :mod:`symtable`) is looked up in
  the student's kernel through :mod:`grading.rpc.client`: plain data (numbers, strings, arrays, containers of them)
  is copied in once when the cell starts; a module the student imported is imported afresh in the grader if it
  belongs to an allowlisted package (numpy, scipy, ...); anything else -- the student's classes, functions,
  objects -- becomes a :class:`~grading.rpc.client.RemoteName` proxy whose calls run in the kernel and return only
  plain data or further handles. Python builtins always mean the grader's builtins.
* The test cell's outputs are made by the grader: captured stdout/stderr become ``stream`` outputs (stderr, e.g. a
  warning, still means zero as in stock nbgrader; Python's default warning filters are re-installed for every test
  cell so a warning shown for one student is shown for all); a final
  expression statement with a non-``None`` value becomes an ``execute_result`` formatted like IPython would (this
  carries nbgrader's partial credit); an exception becomes an ``error`` output whose one-line traceback is
  ``"TypeName: message"`` -- no source code, so hidden tests do not leak into feedback through tracebacks. Nothing
  the kernel printed ever reaches a test cell.
* **Robustness.** Per-cell timeout (interrupt; if the kernel does not answer a ping within ``interrupt_grace``
  seconds afterwards it is killed), per-RPC and per-test-cell time budgets, and an output cap per cell and per
  notebook (beyond it output is truncated and one line says so). Output handling is replaced: libzmq itself drops
  any single message above ``SandboxedKernelManager.max_message_mb`` before it reaches Python, the grader's receive
  queues are bounded, and every kept output is validated and size-capped, so a cell printing 100 MB costs the
  grader a few MB at most. Malformed kernel messages are dropped. Widgets/comms are ignored.
* **Kernel death** (segfault, ``os._exit``, memory or CPU limit, a kill after a timeout) in ordinary cell N adds an
  error output ``"DeadKernelError: kernel died in cell N: <reason>"``. Later test cells still run; their RPCs fail
  cleanly, so they earn zero for whatever needed the dead kernel.

Problem notes for the grade report
----------------------------------
Whatever went wrong while grading -- a kernel death, a timeout, a MemoryError, truncated or lost output, a test
cell missing from the notebook, a duplicate that nbgrader stripped (grading/plugins/sanitize.py), a forged test cell --
is also written as one-line notes ("cell 12 (sum_backward): timed out after 60 s") to the notebook metadata,
``metadata["grading"]["problems"]``, which nbgrader keeps in the autograded notebook (its
ClearMetadataPreprocessor step is disabled by default). The key is always overwritten, so a submission cannot
plant notes of its own. grading/cli/report.py shows them per student.

Restart after a death (decision)
--------------------------------
By default (``max_kernel_restarts = 1``) the grader then starts **one** fresh sandboxed kernel and silently re-runs
every earlier ordinary code cell except the one that killed the kernel, so the remaining cells and tests see the
state they need; the dying cell keeps its error output and gets a note saying so. Rationale: a single exploratory
cell that exceeds the sandbox's (deliberately tight) memory limit, or loops forever ignoring interrupts, should not
zero every later, independent exercise -- while a bare restart without replay is useless (all definitions gone)
and unlimited restarts would let a hostile notebook multiply grading time. Replay runs only code that already ran
in the same sandbox, so it grants no new capability; outputs of replayed cells are discarded (the notebook keeps
the first run's outputs); if the kernel dies again during the replay or the restart budget is spent, the rest of
the notebook runs against the dead kernel as described above. Set ``max_kernel_restarts = 0`` for strict
"a dead kernel stays dead" semantics (what a student sees in Jupyter).
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import copy
import importlib
import io
import json
import os
import shutil
import symtable
import sys
import tempfile
import time
import tokenize
import types
import typing as t
import warnings

from nbclient.exceptions import CellExecutionComplete, DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat import NotebookNode
from nbformat.v4 import new_output, output_from_msg
from nbgrader.preprocessors import Execute
from traitlets import Bool, Dict, Float, Integer, List, Type, Unicode

from grading.course import DUPLICATE_OF, METADATA_KEY, PROBLEMS, TRUSTED_MODULES
from grading.rpc.client import RemoteError, RemoteKernel, RemoteName
from grading.sandbox.kernel_manager import SandboxedKernelManager, SandboxError

__all__ = ["TrustedExecute", "free_names", "TrustedModules"]



# ---------------------------------------------------------------------------------------------------------------
# Helpers for trusted test cells
# ---------------------------------------------------------------------------------------------------------------

def free_names(source: str) -> set[str]:
    """Global names a cell may read before (or without) binding them itself.

    Module-level names that are referenced (assigned ones too: ``x = x + 1`` reads the kernel's ``x``), plus
    implicit globals referenced from functions, lambdas and comprehensions; minus names the cell only binds by
    ``import``/``def``/``class``. Dunder names are excluded. A syntax error yields an empty set (the cell will
    fail to compile anyway).
    """
    try:
        top = symtable.symtable(source, "<test cell>", "exec")
    except (SyntaxError, ValueError):
        return set()
    defined = set()
    for sym in top.get_symbols():
        if sym.is_imported() or sym.is_namespace():
            defined.add(sym.get_name())
    names: set[str] = set()

    def walk(table: symtable.SymbolTable) -> None:
        for sym in table.get_symbols():
            name = sym.get_name()
            if not sym.is_referenced():
                continue
            if table.get_type() == "module" or sym.is_global():
                names.add(name)
        for child in table.get_children():
            walk(child)

    walk(top)
    return {n for n in names - defined if not (n.startswith("__") and n.endswith("__"))}


def _quiet(source: str) -> bool:
    """True if the last code token is ';' (IPython suppresses the cell's result then)."""
    try:
        toks = [tok for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER,
                                    tokenize.INDENT, tokenize.DEDENT)]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return False
    return bool(toks) and toks[-1].type == tokenize.OP and toks[-1].string == ";"


def _default_warning_filters() -> None:
    """Python's default warning filters, freshly installed (which also forgets which warnings were already shown,
    so every student's test cells behave the same however many notebooks this process graded before)."""
    warnings.resetwarnings()
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.filterwarnings("ignore", category=category, append=True)


def _format_value(value: t.Any) -> str:
    """text/plain of a result, as IPython's plain-text formatter would render it."""
    try:
        from IPython.lib.pretty import pretty
        return pretty(value, max_seq_length=1000)
    except Exception:
        return repr(value)


class _CappedText(io.TextIOBase):
    """A text sink keeping at most `limit` characters."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.parts, self.size, self.truncated = limit, [], 0, False

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        room = self.limit - self.size
        if len(s) > room:
            self.truncated = True
            s = s[:max(room, 0)]
        if s:
            self.parts.append(s)
            self.size += len(s)
        return len(s)

    def getvalue(self) -> str:
        return "".join(self.parts)


class TrustedModules:
    """Loads trusted single-file modules (``gradcheck.py``, ``nn.py``) from trusted directories, with an
    ``__import__`` that maps their names to these copies for the test cell and for the modules themselves."""

    def __init__(self, names: t.Iterable[str], dirs: t.Iterable[str]):
        self.names = list(names)
        self.dirs = [d for d in dirs if d]
        self.modules: dict[str, types.ModuleType] = {}
        self.builtins = dict(vars(builtins))
        self.builtins["__import__"] = self._import

    def path_of(self, name: str) -> str | None:
        for d in self.dirs:
            path = os.path.join(d, name + ".py")
            if os.path.isfile(path):
                return path
        return None

    def load(self, name: str) -> types.ModuleType:
        if name in self.modules:
            return self.modules[name]
        path = self.path_of(name)
        if path is None:
            raise ImportError(f"trusted module {name!r} not found in {self.dirs}", name=name)
        with open(path, encoding="utf-8") as f:
            code = compile(f.read(), path, "exec")
        mod = types.ModuleType(name)
        mod.__file__ = path
        mod.__dict__["__builtins__"] = self.builtins
        self.modules[name] = mod       # before executing: circular imports between trusted modules
        saved = sys.modules.get(name)
        sys.modules[name] = mod        # while executing only (dataclasses & co. look themselves up there)
        try:
            exec(code, mod.__dict__)
        except BaseException:
            del self.modules[name]
            raise
        finally:
            if saved is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = saved
        return mod

    def _import(self, name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0:
            top = name.partition(".")[0]
            if top in self.names:
                if name != top:
                    raise ImportError(f"{name}: trusted modules are single files", name=name)
                return self.load(top)
        return builtins.__import__(name, globals, locals, fromlist, level)


class _DeadKernel:
    """Stands in for the RemoteKernel when no kernel is running: every RPC fails cleanly."""

    def __init__(self, reason: str):
        self.reason = reason
        self.deadline = None
        self.alive = False

    def _fail(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        raise RemoteError(f"kernel died ({self.reason})")

    call = getattr = setattr = resolve = _fail

    def session_reset(self) -> None:
        pass

    def close(self) -> None:
        pass


def _error_output(ename: str, evalue: str) -> NotebookNode:
    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def _stream(name: str, text: str) -> NotebookNode:
    return new_output("stream", name=name, text=text)


def _output_size(out: t.Mapping) -> int:
    kind = out.get("output_type")
    if kind == "stream":
        return len(out.get("text", ""))
    if kind == "error":
        return len(out.get("evalue", "")) + sum(len(x) for x in out.get("traceback", []))
    total = 0
    for value in (out.get("data") or {}).values():
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, list):
            total += sum(len(x) if isinstance(x, str) else 64 for x in value)
        else:
            total += len(json.dumps(value, default=str))
    return total + len(json.dumps(out.get("metadata") or {}, default=str))


def _json_plain(value: t.Any, depth: int = 0) -> bool:
    if depth > 32:
        return False
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) in (list, tuple):
        return all(_json_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(type(k) is str and _json_plain(v, depth + 1) for k, v in value.items())
    return False


def _valid_output(out: t.Mapping) -> bool:
    """Structural check of an output built from an (untrusted) kernel message."""
    kind = out.get("output_type")
    if kind == "stream":
        return out.get("name") in ("stdout", "stderr") and isinstance(out.get("text"), str)
    if kind == "error":
        tb = out.get("traceback")
        return (isinstance(out.get("ename"), str) and isinstance(out.get("evalue"), str) and isinstance(tb, list)
                and all(isinstance(x, str) for x in tb))
    if kind in ("display_data", "execute_result"):
        data, meta = out.get("data"), out.get("metadata", {})
        if not isinstance(data, dict) or not isinstance(meta, dict) or not _json_plain(meta):
            return False
        for key, value in data.items():
            if not isinstance(key, str) or len(key) > 200:
                return False
            if key.endswith("json"):
                if not _json_plain(value):
                    return False
            elif not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(x, str) for x in value))):
                return False
        if kind == "execute_result" and not (out.get("execution_count") is None
                                             or type(out.get("execution_count")) is int):
            return False
        return True
    return False


# ---------------------------------------------------------------------------------------------------------------
# The preprocessor
# ---------------------------------------------------------------------------------------------------------------

class TrustedExecute(Execute):
    """nbgrader ``Execute`` replacement: ordinary cells in a sandboxed kernel, test cells in the grader."""

    kernel_manager_class = Type(SandboxedKernelManager, klass="jupyter_client.manager.KernelManager",
                                help="Kernel manager for the student kernel (must be sandboxed).").tag(config=True)
    shutdown_kernel = Unicode("immediate").tag(config=True)
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
    max_kernel_restarts = Integer(1, help="Fresh kernels (with replay of earlier cells) after a kernel death; "
                                          "see the module docstring.").tag(config=True)

    trusted_module_names = List(Unicode(), list(TRUSTED_MODULES),
                                help="Modules that test cells (and each other) import from trusted dirs.").tag(
        config=True)
    trusted_module_dirs = List(Unicode(), ["{course_root}/{source_directory}/{assignment_id}", "{course_root}"],
                               help="Where trusted modules are searched, first match wins. Formatted with "
                                    "course_root, source_directory, release_directory and assignment_id.").tag(
        config=True)
    trusted_globals = Dict({"np": "numpy", "numpy": "numpy"},
                           help="name -> module imported in the grader and bound in every test cell.").tag(config=True)
    importable_packages = List(Unicode(), ["numpy", "scipy", "math", "cmath", "statistics", "itertools", "functools",
                                           "collections", "matplotlib", "sklearn", "pandas"],
                               help="A free name bound to a module in the student kernel is re-imported in the "
                                    "grader if the module belongs to one of these top-level packages; otherwise it "
                                    "stays remote.").tag(config=True)

    scratch_root = Unicode("", help="Parent of the per-notebook scratch dirs (default: system temp dir; a tmpfs "
                                    "such as /dev/shm makes RPCs faster).").tag(config=True)
    support_files_max_mb = Integer(512, help="Cap on support files copied into the scratch dir.").tag(config=True)
    exclude_instructor_files = Bool(True, help="Do not copy files found in source/<assignment>/ but not in "
                                               "release/<assignment>/.").tag(config=True)
    course_root = Unicode("", help="Course directory (default: CourseDirectory.root).").tag(config=True)

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        # nbgrader's Execute.__init__ forces kernel_manager_class=AsyncKernelManager: never accept that here.
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ setup

    def _coursedir(self) -> t.Any:
        from nbgrader.coursedir import CourseDirectory
        return CourseDirectory(config=self.config)

    def _course_paths(self, resources: dict) -> dict:
        cd = self._coursedir()
        root = self.course_root or cd.root
        return {"course_root": os.path.abspath(root), "source_directory": cd.source_directory,
                "release_directory": cd.release_directory,
                "assignment_id": (resources.get("nbgrader") or {}).get("assignment", "")}

    def _test_sources(self, resources: dict) -> dict[str, str]:
        """grade_id -> source of every autograder test cell of this notebook, from the gradebook."""
        info = resources.get("nbgrader") or {}
        db_url, notebook, assignment = info.get("db_url"), info.get("notebook"), info.get("assignment")
        if not (db_url and notebook and assignment):
            self.log.warning("TrustedExecute: no gradebook information; no cell will be run as a trusted test")
            return {}
        from nbgrader.api import Gradebook, MissingEntry
        out = {}
        with Gradebook(db_url, self._coursedir().course_id or "default_course") as gb:
            try:
                nb = gb.find_notebook(notebook, assignment)
            except MissingEntry:
                return {}
            solutions = {c.name for c in nb.solution_cells}
            for gc in nb.grade_cells:
                if gc.cell_type != "code" or gc.name in solutions:
                    continue
                try:
                    sc = gb.find_source_cell(gc.name, notebook, assignment)
                except MissingEntry:
                    continue
                if sc.locked and sc.cell_type == "code":
                    out[gc.name] = sc.source
        return out

    def _make_scratch(self, resources: dict, paths: dict) -> str:
        self._scratch_base = tempfile.mkdtemp(prefix="grading-", dir=self.scratch_root or None)
        scratch = os.path.join(self._scratch_base, "scratch")
        os.mkdir(scratch, 0o700)
        src = (resources.get("metadata") or {}).get("path") or ""
        if not src or not os.path.isdir(src):
            return scratch
        skip: set[str] = set()
        if self.exclude_instructor_files and paths["assignment_id"]:
            source_dir = os.path.join(paths["course_root"], paths["source_directory"], paths["assignment_id"])
            release_dir = os.path.join(paths["course_root"], paths["release_directory"], paths["assignment_id"])
            if os.path.isdir(source_dir) and os.path.isdir(release_dir):
                for dirpath, _, files in os.walk(source_dir):
                    for name in files:
                        rel = os.path.relpath(os.path.join(dirpath, name), source_dir)
                        if not os.path.exists(os.path.join(release_dir, rel)):
                            skip.add(rel)
        budget = [self.support_files_max_mb << 20]

        def copy_dir(src_dir: str, dst_dir: str, rel: str) -> None:
            try:
                entries = sorted(os.scandir(src_dir), key=lambda e: e.name)
            except OSError:
                return
            for entry in entries:
                relpath = os.path.join(rel, entry.name) if rel else entry.name
                if entry.is_symlink() or entry.name in (".ipynb_checkpoints", "__pycache__"):
                    continue
                if entry.is_dir():
                    os.mkdir(os.path.join(dst_dir, entry.name), 0o755)
                    copy_dir(entry.path, os.path.join(dst_dir, entry.name), relpath)
                elif entry.is_file() and not entry.name.endswith(".ipynb"):
                    if relpath in skip:
                        self.log.info("TrustedExecute: not copying instructor-only file %s", relpath)
                        continue
                    size = entry.stat().st_size
                    if size > budget[0]:
                        self.log.warning("TrustedExecute: support files exceed %d MiB; %s not copied",
                                         self.support_files_max_mb, relpath)
                        continue
                    budget[0] -= size
                    dst = os.path.join(dst_dir, entry.name)
                    shutil.copyfile(entry.path, dst, follow_symlinks=False)
                    os.chmod(dst, 0o644)

        copy_dir(src, scratch, "")
        return scratch

    # ------------------------------------------------------------------ entry point

    def preprocess(self, nb: NotebookNode, resources: t.Any = None, km: t.Any = None):
        """Execute the notebook (see the module docstring); returns (nb, resources) like ExecutePreprocessor."""
        from nbclient import NotebookClient

        NotebookClient.__init__(self, nb, None)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        resources = self.resources if self.resources is not None else {}
        paths = self._course_paths(resources)
        self._tests = self._test_sources(resources)
        dirs = [d.format(**paths) for d in self.trusted_module_dirs]
        self._trusted = TrustedModules(self.trusted_module_names, dirs)
        self._scratch = self._make_scratch(resources, paths)
        self._nb_bytes = 0
        self._rk: t.Any = None
        self._problems: list[str] = []
        try:
            run_sync(self._async_run)()
        finally:
            shutil.rmtree(self._scratch_base, ignore_errors=True)
        # Always replaced: the submitted notebook's own metadata is the student's to forge.
        self.nb.metadata[METADATA_KEY] = {PROBLEMS: list(self._problems)}
        return self.nb, self.resources

    def _problem(self, index: int | None, text: str) -> None:
        """Record a one-line note for the grade report (and the log): "cell 12 (sum_backward): <text>"."""
        where = ""
        if index is not None and 0 <= index < len(self.nb.cells):
            cell = self.nb.cells[index]
            md = cell.metadata.get("nbgrader") if isinstance(cell.metadata, dict) else None
            label = md.get("grade_id") if isinstance(md, dict) else None
            label = label if isinstance(label, str) else cell.get("id")
            label = label if isinstance(label, str) and label.isprintable() and len(label) <= 64 else None
            where = f"cell {index + 1}" + (f" ({label})" if label else "") + ": "
        note = (where + text)[:300]
        if note not in self._problems and len(self._problems) < 50:
            self._problems.append(note)
            self.log.warning("TrustedExecute: %s", note)

    def _check_cells(self) -> None:
        """Notes on test cells nbgrader will not score: missing from the notebook, or copies that
        grading.plugins.sanitize.DeduplicateIds turned into ordinary cells."""
        present = set()
        for index, cell in enumerate(self.nb.cells):
            md = cell.metadata if isinstance(cell.metadata, dict) else {}
            dup = md.get(METADATA_KEY, {}).get(DUPLICATE_OF) if isinstance(md.get(METADATA_KEY), dict) else None
            if isinstance(dup, str) and dup.isprintable():
                self._problem(index, f"duplicate grade id {dup[:64]}: this copy ran as an ordinary cell")
            gid = md.get("nbgrader", {}).get("grade_id") if isinstance(md.get("nbgrader"), dict) else None
            if isinstance(gid, str):
                present.add(gid)
        for gid in sorted(set(self._tests) - present):
            self._problem(None, f"test cell {gid} is missing from the notebook")

    async def _async_run(self) -> None:
        self._executed: list[int] = []        # ordinary cells run in the current kernel (for replay)
        self._culprits: set[int] = set()      # cells that killed a kernel (never replayed)
        self._restarts = 0
        self._death: tuple[int, str] | None = None    # (cell index, reason) of the death to report
        self._gave_up = False                          # no more restarts: the kernel stays dead
        self._check_cells()
        try:
            await self._async_start()
            for index, cell in enumerate(self.nb.cells):
                if cell.cell_type != "code":
                    continue
                md = cell.metadata.get("nbgrader", {}) if isinstance(cell.metadata, dict) else {}
                md = md if isinstance(md, dict) else {}
                grade_id = md.get("grade_id") if isinstance(md.get("grade_id"), str) else None
                if grade_id in self._tests:
                    await self._ensure_kernel()
                    self._run_test_cell(cell, index, self._tests[grade_id])
                    if self._death is None and self._rk is not None and not self._kernel_alive():
                        self._note_death(index, self._rk.dead_reason or "died")
                    self._nb_bytes += sum(_output_size(o) for o in cell.outputs)
                elif md.get("grade") and not md.get("solution"):
                    cell.outputs = [_error_output(
                        "UnverifiedTestCell", "this cell is marked as an autograder test but is not one of the "
                        "gradebook's test cells; it was not run")]
                    self._problem(index, "marked as an autograder test but not one of the gradebook's; not run")
                elif cell.source.strip():
                    await self._ensure_kernel()
                    await self._run_ordinary_cell(cell, index)
        finally:
            await self._async_stop()

    # ------------------------------------------------------------------ kernel lifecycle

    def create_kernel_manager(self):
        if not (isinstance(self.kernel_manager_class, type)
                and issubclass(self.kernel_manager_class, SandboxedKernelManager)):
            raise SandboxError(f"TrustedExecute.kernel_manager_class must be a SandboxedKernelManager, not "
                               f"{self.kernel_manager_class!r}; refusing to run student code unsandboxed")
        self.kernel_name = "python3"
        self.km = self.kernel_manager_class(kernel_name="python3", config=self.config, scratch_dir=self._scratch)
        return self.km

    async def _async_start(self) -> None:
        self.create_kernel_manager()
        await self.async_start_new_kernel(cwd=self._scratch)
        await self.async_start_new_kernel_client()
        msg_id = await ensure_async(self.kc.kernel_info())
        info = await self.async_wait_for_reply(msg_id)
        lang = (info or {}).get("content", {}).get("language_info") if isinstance(info, dict) else None
        if isinstance(lang, dict) and _json_plain(lang) and len(json.dumps(lang)) < 10000:
            self.nb.metadata["language_info"] = lang
        else:
            self.nb.metadata["language_info"] = {"name": "python"}
        self._rk = RemoteKernel(self.km, self._scratch, timeout=self.rpc_timeout,
                                interrupt_grace=self.interrupt_grace)

    async def _async_stop(self) -> None:
        if self._rk is not None:
            self._rk.close()
            self._rk = None
        if self.km is not None:
            try:
                await self._async_cleanup_kernel()
            except Exception as e:      # never let clean-up hide the notebook's results
                self.log.warning("TrustedExecute: kernel clean-up failed: %s", e)
                if hasattr(self.km, "kill_now"):
                    self.km.kill_now()
            self.km = None
            self.kc = None

    def _kernel_alive(self) -> bool:
        return self._rk is not None and self._rk.alive

    def _note_death(self, index: int, reason: str) -> None:
        self._culprits.add(index)
        if self._death is None:
            self._death = (index, reason)
            self._problem(index, f"kernel died ({reason})")
        if self._rk is not None:
            self._rk.mark_dead(reason)

    async def _ensure_kernel(self) -> None:
        """Before each cell: if the kernel died, restart it and replay earlier cells (within budget)."""
        if self._gave_up or self._kernel_alive():
            return
        if self._death is None:       # died between cells (e.g. a background thread): blame the last cell
            last = self._executed[-1] if self._executed else -1
            reason = self.km.describe_exit() if self.km is not None and hasattr(self.km, "describe_exit") else "?"
            self._note_death(last, reason)
        index, reason = self._death
        if self._restarts >= self.max_kernel_restarts:
            self._gave_up = True
            self._problem(None, f"the kernel stayed dead after cell {index + 1} (no restarts left): later "
                                "cells were not run")
            return
        self._restarts += 1
        self.log.warning("TrustedExecute: kernel died in cell %d (%s); restarting and re-running earlier cells",
                         index + 1, reason)
        await self._async_stop()
        try:
            await self._async_start()
        except Exception as e:
            self.log.error("TrustedExecute: could not restart the kernel: %s", e)
            self._problem(None, f"the kernel could not be restarted after cell {index + 1}: later cells were "
                                "not run")
            self._gave_up = True
            self._rk = _DeadKernel(f"could not restart after the death in cell {index + 1}")
            return
        replay = [i for i in self._executed if i not in self._culprits]
        self._executed = []
        ok = True
        for i in replay:
            original = self.nb.cells[i]
            scratch_cell = copy.deepcopy(original)
            try:
                await self.async_execute_cell(scratch_cell, i, execution_count=original.get("execution_count"))
                self._executed.append(i)
            except Exception:
                ok = False
            finally:
                self.nb.cells[i] = original
            if ok and self._timed_out and not self._ping():
                self.km.kill_now()
                ok = False
            if not ok or not self._kernel_alive():
                ok = False
                break
            if not self._idle_seen:
                await self._reconnect_iopub()
        note = ("a fresh kernel was started and the earlier cells were re-run" if ok else
                "a fresh kernel was started, but it died again while re-running the earlier cells")
        culprit = self.nb.cells[index] if 0 <= index < len(self.nb.cells) else None
        if culprit is not None and culprit.cell_type == "code":
            culprit.outputs.append(_stream("stdout", f"\n[grader: {note}]\n"))
        if ok:
            self._death = None
        else:
            self._gave_up = True
            self._problem(index, "the fresh kernel died again while re-running earlier cells: later cells were "
                                 "not run")
            self._death = (index, reason + "; it died again while re-running earlier cells")
            if self._rk is not None:
                self._rk.mark_dead(self._death[1])

    # ------------------------------------------------------------------ ordinary cells

    async def _run_ordinary_cell(self, cell: NotebookNode, index: int) -> None:
        if not self._kernel_alive():
            where, reason = self._death if self._death else (index, "not running")
            cell.outputs = [_error_output("DeadKernelError", f"kernel died in cell {where + 1}: {reason}; "
                                                             "this cell was not run")]
            return
        try:
            await self.async_execute_cell(cell, index, execution_count=self.code_cells_executed + 1)
            if not self._timed_out:
                self._executed.append(index)     # replayed after a restart (timed-out cells are not)
        except DeadKernelError:
            self._cell_notes(cell, index)
            reason = self.km.describe_exit() if hasattr(self.km, "describe_exit") else "died"
            cell.outputs.append(_error_output("DeadKernelError", f"kernel died in cell {index + 1}: {reason}"))
            self._note_death(index, reason)
            return
        except Exception as e:
            cell.outputs.append(_error_output(type(e).__name__, f"the grader could not run this cell: {e}"))
        self._cell_notes(cell, index)
        if not self._kernel_alive():
            reason = self.km.describe_exit() if hasattr(self.km, "describe_exit") else "died"
            cell.outputs.append(_error_output("DeadKernelError", f"kernel died in cell {index + 1}: {reason}"))
            self._note_death(index, reason)
            return
        if self._timed_out and not self._ping():
            self.km.kill_now()
            reason = f"it did not stop within {self.interrupt_grace:.0f} s after the {self.timeout} s timeout " \
                     "and was killed"
            cell.outputs.append(_error_output("DeadKernelError", f"kernel died in cell {index + 1}: {reason}"))
            self._note_death(index, reason)
            return
        if not self._idle_seen:
            if not self._timed_out:
                cell.outputs.append(_stream("stdout", "\n[grader: some output of this cell was lost (a single "
                                                      "message over the size limit, or the kernel stopped "
                                                      "sending)]\n"))
                self._problem(index, "some output was lost (a message over the size limit)")
            await self._reconnect_iopub()
        self._nb_bytes += sum(_output_size(o) for o in cell.outputs)

    def _cell_notes(self, cell: NotebookNode, index: int) -> None:
        """Problem notes about an ordinary cell that just ran: timeout, truncated output, MemoryError."""
        if self._timed_out:
            self._problem(index, f"timed out after {self.timeout} s")
        if self._cell_truncated:
            self._problem(index, f"output truncated (more than {self._truncated_at})")
        if any(o.get("output_type") == "error" and o.get("ename") == "MemoryError" for o in cell.outputs):
            self._problem(index, "out of memory (MemoryError)")

    async def _reconnect_iopub(self) -> None:
        """Replace nbclient's IOPub socket after the kernel's output went missing.

        libzmq drops a connection that delivers a message above ZMQ_MAXMSGSIZE and does not reconnect it, so
        without this every later cell would lose its output and wait ``iopub_timeout``. A fresh SUB socket is
        connected and confirmed with a kernel_info round trip (its busy/idle status arrives on IOPub).
        """
        kc = self.kc
        if kc is None or not self._kernel_alive():
            return
        try:
            if kc._iopub_channel is not None:
                kc._iopub_channel.close()
            kc._iopub_channel = None
            channel = kc.iopub_channel
            channel.start()
            deadline = time.monotonic() + max(2.0, self.interrupt_grace)
            while time.monotonic() < deadline:
                await ensure_async(kc.kernel_info())
                try:
                    await ensure_async(channel.get_msg(timeout=0.5))
                    break
                except Exception:
                    continue
            while True:        # drain what the probes produced
                try:
                    await ensure_async(channel.get_msg(timeout=0.05))
                except Exception:
                    break
        except Exception as e:
            self.log.warning("TrustedExecute: could not reconnect to the kernel's output: %s", e)

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        self._cell_bytes = 0
        self._cell_truncated = False
        self._idle_seen = False
        self._timed_out = False
        return await super().async_execute_cell(cell, cell_index, execution_count=execution_count,
                                                store_history=store_history)

    def _ping(self) -> bool:
        """Does the kernel answer a kernel_info request within interrupt_grace seconds?"""
        rk = self._rk
        return rk is not None and rk.alive and rk.ping(self.interrupt_grace)

    async def _async_handle_timeout(self, timeout: int, cell: NotebookNode | None = None):
        self._timed_out = True
        return await super()._async_handle_timeout(timeout, cell)

    # Output handling (replaces nbclient's): validated, size-capped, no widgets.

    def process_message(self, msg: dict, cell: NotebookNode, cell_index: int):
        try:
            if msg.get("msg_type") == "status" and msg.get("content", {}).get("execution_state") == "idle":
                self._idle_seen = True
            return super().process_message(msg, cell, cell_index)
        except CellExecutionComplete:
            raise
        except Exception as e:
            self.log.debug("TrustedExecute: dropped malformed kernel message: %s", e)
            return None

    def handle_comm_msg(self, outs, msg, cell_index) -> None:
        return None

    def _update_display_id(self, display_id: str, msg: dict) -> None:
        try:
            probe = output_from_msg(dict(msg, msg_type="display_data",
                                         header=dict(msg["header"], msg_type="display_data")))
            if not _valid_output(probe) or _output_size(probe) > 65536:
                return
        except Exception:
            return
        super()._update_display_id(display_id, msg)

    def on_cell_executed(self, **kwargs: t.Any) -> None:
        """nbgrader's hook (adds an error output when the reply reports one the outputs lack), fed only with
        well-formed reply fields: the reply comes from the untrusted kernel."""
        reply = kwargs.get("execute_reply") or {}
        content = reply.get("content") if isinstance(reply, dict) else None
        if not isinstance(content, dict):
            return
        tb = content.get("traceback")
        clean = {
            "status": content.get("status"),
            "ename": content.get("ename") if isinstance(content.get("ename"), str) else "Error",
            "evalue": content.get("evalue")[:10000] if isinstance(content.get("evalue"), str) else "",
            "traceback": [x[:2000] for x in tb[:200] if isinstance(x, str)] if isinstance(tb, list) else [],
        }
        super().on_cell_executed(**dict(kwargs, execute_reply={"content": clean}))

    def clear_output(self, outs, msg, cell_index) -> None:
        super().clear_output(outs, msg, cell_index)
        if not outs:
            self._cell_bytes = 0

    def output(self, outs, msg, display_id, cell_index):
        try:
            out = output_from_msg(msg)
        except Exception:
            return None
        if not _valid_output(out):
            return None
        if self.clear_before_next_output:
            outs[:] = []
            self._cell_bytes = 0
            self.clear_display_id_mapping(cell_index)
            self.clear_before_next_output = False
        out = self._admit(out, outs)
        if out is None:
            return None
        if display_id:
            self._display_id_map.setdefault(display_id, {}).setdefault(cell_index, []).append(len(outs))
        outs.append(out)
        return out

    def _admit(self, out: NotebookNode, outs: list) -> NotebookNode | None:
        """Apply the per-cell and per-notebook output caps; append the one truncation note when needed."""
        size = _output_size(out)
        if out.output_type == "error":     # errors: always kept, individually capped
            out.evalue = out.evalue[:10000]
            out.traceback = [line[:2000] for line in out.traceback[:200]]
            return out
        if self._cell_truncated:
            return None
        cell_room = self.max_output_bytes_per_cell - self._cell_bytes
        nb_room = self.max_output_bytes_per_notebook - self._nb_bytes - self._cell_bytes
        room = min(cell_room, nb_room)
        if size <= room:
            self._cell_bytes += size
            return out
        self._cell_truncated = True
        which = (f"{self.max_output_bytes_per_cell} bytes for this cell" if cell_room <= nb_room
                 else f"{self.max_output_bytes_per_notebook} bytes for the notebook")
        self._truncated_at = which
        note = f"\n[output truncated: more than {which}]\n"
        if out.output_type == "stream" and room > 0:
            out.text = out.text[:room] + note
            self._cell_bytes += room
            return out
        outs.append(_stream("stdout", note))
        return None

    # ------------------------------------------------------------------ trusted test cells

    def _namespace(self, source: str, rk: t.Any) -> dict:
        ns: dict[str, t.Any] = {"__name__": "__main__", "__builtins__": self._trusted.builtins}
        for name, modname in self.trusted_globals.items():
            ns[name] = importlib.import_module(modname)
        for name in self._trusted.names:
            if self._trusted.path_of(name) is not None:
                ns[name] = self._trusted.load(name)
        wanted = sorted(n for n in free_names(source)
                        if n not in ns and n not in self._trusted.names and n not in self._trusted.builtins)
        if not wanted:
            return ns
        found = rk.resolve(wanted)      # RemoteError (e.g. "kernel died") fails the whole test cell cleanly
        for name, (kind, value) in found.items():
            if kind == "value":
                ns[name] = value
            elif kind == "module":
                mod = self._allowed_module(value)
                ns[name] = mod if mod is not None else RemoteName(rk, name)
            elif kind == "remote":
                ns[name] = RemoteName(rk, name)
            # "missing": left unbound, so using it raises NameError as it would in the notebook
        return ns

    def _allowed_module(self, modname: str) -> types.ModuleType | None:
        parts = modname.split(".") if isinstance(modname, str) else []
        if not parts or not all(p.isidentifier() for p in parts):
            return None
        if parts[0] in self._trusted.names:
            return self._trusted.load(parts[0]) if len(parts) == 1 else None
        if parts[0] not in self.importable_packages:
            return None
        try:
            return importlib.import_module(modname)
        except Exception:
            return None

    def _run_test_cell(self, cell: NotebookNode, index: int, source: str) -> None:
        self.code_cells_executed += 1
        cell.execution_count = self.code_cells_executed
        cell.outputs = []
        rk = self._rk if self._kernel_alive() else _DeadKernel(
            f"in cell {self._death[0] + 1}: {self._death[1]}" if self._death else "not running")
        limit = self.max_output_bytes_per_cell
        out, err = _CappedText(limit), _CappedText(limit)
        value, error = None, None
        rk.session_reset()
        rk.deadline = time.monotonic() + self.test_cell_timeout
        filename = f"<test cell {cell.metadata.get('nbgrader', {}).get('grade_id', index + 1)}>"
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
                _default_warning_filters()
                try:
                    tree = ast.parse(source, filename, "exec")
                    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
                    ns = self._namespace(source, rk)
                    exec(compile(tree, filename, "exec"), ns)
                    if last is not None:
                        value = eval(compile(ast.Expression(last.value), filename, "eval"), ns)
                        if _quiet(source):
                            value = None
                except KeyboardInterrupt:
                    raise
                except BaseException as e:     # noqa: B036 -- trusted code; SystemExit is a failure too
                    error = e
        finally:
            rk.deadline = None
            rk.session_reset()
        text = None
        if value is not None:
            try:
                text = _format_value(value)[:limit]
            except Exception as e:
                error = e
        if out.getvalue():
            cell.outputs.append(_stream("stdout", out.getvalue() + ("\n[output truncated]\n" if out.truncated
                                                                        else "")))
        if err.getvalue():
            cell.outputs.append(_stream("stderr", err.getvalue()))
        if text is not None and error is None:
            cell.outputs.append(new_output("execute_result", data={"text/plain": text},
                                           execution_count=cell.execution_count))
        if error is not None:
            try:
                evalue = str(error)
            except Exception:
                evalue = "<unprintable error>"
            cell.outputs.append(_error_output(type(error).__name__, evalue[:10000]))
