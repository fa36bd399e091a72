"""The trusted-cell runner: an autograder test cell's source, run in the grader process, becomes its outputs.

:func:`run_test_cell` is a pure function of the test cell's source (as stored in the gradebook), a kernel handle
(:class:`grading.rpc.client.RemoteKernel`, or any object with its ``resolve``/``session_reset``/``deadline``) and
the trusted setup (:class:`TrustedCellSetup`):

* The cell runs in a fresh namespace holding the trusted globals (``np``) and the trusted ``gradcheck`` and ``nn``
  modules (grading/trusted/modules.py); ``import gradcheck`` inside the cell or those modules gets the same copies.
* Every other free name the cell reads (:func:`free_names`, found with :mod:`symtable`) is looked up in the
  student's kernel: plain data (numbers, strings, arrays, containers of them) is copied in once; a module is the
  grader's own only if it is on the allow-list, else it stays remote like everything else the student defined
  -- a :class:`~grading.rpc.client.RemoteName` whose calls run in the kernel and return only plain data or further
  handles. Python builtins always mean the grader's builtins.
* Outputs are made here: captured stdout/stderr become ``stream`` outputs (stderr, e.g. a warning, still means
  zero as in stock nbgrader); a final expression with a non-``None`` value becomes an ``execute_result`` formatted
  like IPython's (this carries nbgrader's partial credit); an exception becomes an ``error`` output whose one-line
  traceback is ``"TypeName: message"``. Warnings print as ``"Category: message"``, without the grader's file
  paths or source lines, and Python's default warning filters are re-installed for every cell, so a warning shown
  for one student is shown for all. Nothing the kernel printed ever reaches a test cell.
* Check records: every ``gradcheck.grade`` call of the cell hands its sub-check results to the trusted
  ``gradcheck_records`` module; :func:`run_test_cell` collects them as JSON objects (``records``) and
  :func:`check_records` keeps them in the test cell's metadata, where the misconception report reads them.
"""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import symtable
import sys
import time
import tokenize
import typing as t
import warnings

from nbformat import NotebookNode
from nbformat.v4 import new_output

from grading.course import CHECKS, METADATA_KEY, RECORDS_MODULE
from grading.rpc.client import RemoteName
from grading.trusted.modules import TrustedModules
from grading.trusted.outputs import MAX_EVALUE, error_output, stream_output


@dataclasses.dataclass(frozen=True)
class TrustedCellSetup:
    """What every test cell of a notebook is run with."""

    modules: TrustedModules                   # trusted modules, trusted globals, allow-list
    output_limit: int                         # characters kept of stdout, of stderr and of the result
    time_budget: float                        # seconds of RPCs one test cell may spend


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
    defined = {sym.get_name() for sym in top.get_symbols() if sym.is_imported() or sym.is_namespace()}
    names: set[str] = set()

    def walk(table: symtable.SymbolTable) -> None:
        for sym in table.get_symbols():
            if sym.is_referenced() and (table.get_type() == "module" or sym.is_global()):
                names.add(sym.get_name())
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


def _format_value(value: t.Any) -> str:
    """text/plain of a result, as IPython's plain-text formatter would render it."""
    try:
        from IPython.lib.pretty import pretty
        return pretty(value, max_seq_length=1000)
    except Exception:
        return repr(value)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as "Category: message": the grader's file paths and source lines never reach the student."""
    sys.stderr.write(f"{category.__name__}: {message}\n")


def _grader_warnings() -> None:
    """Python's default warning filters, freshly installed (which also forgets which warnings were already shown,
    so every student's test cells behave the same however many notebooks this process graded before), shown
    without file paths. Call inside ``warnings.catch_warnings()``, which restores both afterwards."""
    warnings.resetwarnings()
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.filterwarnings("ignore", category=category, append=True)
    warnings.showwarning = _show_warning


class CappedText(io.TextIOBase):
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


def namespace(source: str, kernel: t.Any, setup: TrustedCellSetup) -> dict:
    """The globals a test cell runs with (see the module docstring). A RemoteError from the kernel (e.g. "kernel
    died") propagates: it fails the whole test cell cleanly."""
    trusted = setup.modules
    ns: dict[str, t.Any] = {"__name__": "__main__", "__builtins__": trusted.builtins, **trusted.globals()}
    wanted = sorted(n for n in free_names(source)
                    if n not in ns and n not in trusted.names and n not in trusted.builtins)
    found = kernel.resolve(wanted) if wanted else {}
    for name, (kind, value) in found.items():
        if kind == "value":
            ns[name] = value
        elif kind == "module":
            mod = trusted.grader_module(value)
            ns[name] = mod if mod is not None else RemoteName(kernel, name)
        elif kind == "remote":
            ns[name] = RemoteName(kernel, name)
        # "missing": left unbound, so using it raises NameError as it would in the notebook
    return ns


def _recording(modules: TrustedModules, records: list | None) -> t.ContextManager:
    """While the cell runs, collect each graded item's check records (JSON objects) into ``records``."""
    if records is None:
        return contextlib.nullcontext()
    try:
        module = modules.load(RECORDS_MODULE)
    except ImportError:     # a course whose checker keeps no records
        return contextlib.nullcontext()
    return module.recording(lambda results: records.extend(r.to_json() for r in results))


def check_records(cell: NotebookNode) -> list:
    """A fresh, empty list of check records in the test cell's metadata, for run_test_cell to fill (sanitizing
    dropped any copy a student wrote; the misconception report reads these, never the printed text)."""
    ours = cell.metadata.get(METADATA_KEY)
    cell.metadata[METADATA_KEY] = {**(ours if isinstance(ours, dict) else {}), CHECKS: []}
    return cell.metadata[METADATA_KEY][CHECKS]


def run_test_cell(source: str, kernel: t.Any, setup: TrustedCellSetup, *, filename: str = "<test cell>",
                  execution_count: int | None = None, records: list | None = None) -> list[NotebookNode]:
    """Run a test cell's trusted source against the student's kernel; return the cell's outputs. With
    ``records`` (a list), the check records of the cell's grade calls are appended to it."""
    out, err = CappedText(setup.output_limit), CappedText(setup.output_limit)
    value, error = None, None
    kernel.session_reset()
    kernel.deadline = time.monotonic() + setup.time_budget
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(), \
                _recording(setup.modules, records):
            _grader_warnings()
            try:
                tree = ast.parse(source, filename, "exec")
                last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
                ns = namespace(source, kernel, setup)
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
        kernel.deadline = None
        kernel.session_reset()
    return _outputs(out, err, value, error, setup.output_limit, execution_count)


def _outputs(out: CappedText, err: CappedText, value: t.Any, error: BaseException | None, limit: int,
             execution_count: int | None) -> list[NotebookNode]:
    text = None
    if value is not None:
        try:
            text = _format_value(value)[:limit]
        except Exception as e:
            error = e
    outputs = []
    if out.getvalue():
        outputs.append(stream_output("stdout", out.getvalue() + ("\n[output truncated]\n" if out.truncated else "")))
    if err.getvalue():
        outputs.append(stream_output("stderr", err.getvalue()))
    if text is not None and error is None:
        outputs.append(new_output("execute_result", data={"text/plain": text}, execution_count=execution_count))
    if error is not None:
        try:
            evalue = str(error)
        except Exception:
            evalue = "<unprintable error>"
        outputs.append(error_output(type(error).__name__, evalue[:MAX_EVALUE]))
    return outputs
