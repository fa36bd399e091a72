"""``FlagNumericalBackward``: elementwise answers whose backward differentiates numerically go to manual review.

For an elementwise layer (Multiply, Sum) one complex-step or finite-difference pass costs no more than
backpropagation, so the large hidden case (gradcheck_engine's ``LARGE``) cannot tell them apart. This step reads
the answer cell's source -- parsed with :mod:`ast`, never executed -- and flags the item when its ``backward`` (or a
function of the notebook that backward calls) calls a forward pass, uses complex numbers, calls a numerical
differentiator, or uses a finite-difference step. A flag never changes the points: the test cell's grade gets
nbgrader's own ``needs_manual_grade`` (formgrader lists the submission under "needs manual grade"), the answer
cell's comment and the grade report (``nb.metadata.grading.problems``) say why in one line.

Also flagged: dynamic attribute access or dynamic code in backward (``getattr(self, "for" + "ward")``,
``operator.attrgetter``, ``eval``...: this review cannot follow the name), and step sizes written as constant
expressions (``2.0 ** -20``, ``1 / 1e6``: folded with floats, never big integers) or taken from ``np.finfo``.

What it cannot see (documented in docs/security.md): a step computed from data at run time, numerical
differentiation in a module or file of the submission (other than its notebook's cells) or in code built as a
string somewhere else than backward; those are left to the large hidden case and to the instructor.

Budget: this step parses student text in the grader's own process, so every cell is measured before it is
parsed. A code cell over ``max_cell_kb``, cells beyond ``max_notebook_kb`` in all, and a cell whose parse runs out
of recursion or memory are not parsed: both answers are flagged for manual review with a one-line reason instead
("was not read"). The parse of a cell of at most ``max_cell_kb`` costs a few MB and milliseconds; each cell is
parsed once.

Runs after ``SaveAutoGrades`` in ``c.Autograde.autograde_preprocessors``, which would otherwise reset the flag.
"""
import ast
import math

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Dict, Float, Integer, List, Unicode

from grading.course import METADATA_KEY, PROBLEMS
from grading.trusted.gradebook import grade_id


class FlagNumericalBackward(NbGraderPreprocessor):
    """Set needs_manual_grade on elementwise items whose backward looks numerical (see the module docstring)."""

    cells = Dict({"multiply_backward": "test_multiply_backward", "sum_backward": "test_sum_backward"},
                 help="Answer cell grade_id -> the test cell whose grade is flagged.").tag(config=True)
    method = Unicode("backward", help="The answer's function that must not differentiate numerically.").tag(
        config=True)
    forward_names = List(Unicode(), ["forward"], help="Calls that are a forward pass.").tag(config=True)
    numerical_names = List(Unicode(), ["numerical_gradient", "directional_derivatives", "approx_fprime",
                                       "check_grad", "gradient", "derivative", "approx_derivative", "jacobian"],
                           help="Calls that differentiate numerically (np.gradient, scipy's approx_fprime, "
                                "the checker's own numerical_gradient...).").tag(config=True)
    complex_names = List(Unicode(), ["complex", "complex64", "complex128", "complex256", "complex_", "csingle",
                                     "cdouble", "clongdouble", "imag", "cmath"],
                         help="Names, attributes and dtype strings that mean complex arithmetic.").tag(config=True)
    dynamic_names = List(Unicode(), ["getattr", "__getattribute__", "attrgetter", "methodcaller", "eval", "exec",
                                     "compile", "__import__", "import_module", "vars", "__dict__"],
                         help="Calls and attributes that reach code by a name built at run time.").tag(config=True)
    step_names = List(Unicode(), ["finfo", "spacing", "nextafter"],
                      help="Calls that yield a finite-difference step (np.finfo(float).eps ** 0.5...).").tag(
        config=True)
    max_step = Float(1e-3, help="A float literal, or a constant expression of numbers (2.0 ** -20), with "
                                "0 < |v| <= max_step in backward is a finite-difference step.").tag(config=True)
    max_cell_kb = Integer(64, help="A code cell larger than this is not parsed: the answers are flagged for "
                                   "manual review instead.").tag(config=True)
    max_notebook_kb = Integer(1024, help="Code parsed per notebook at most; cells beyond it are not parsed "
                                         "(the answers are flagged).").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        parsed, unread = self.parse_cells(nb)
        notes = {}
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and grade_id(cell) in self.cells:
                if unread:
                    notes[grade_id(cell)] = f"needs manual review: {unread[0]}, so its {self.method} was not checked"
                    continue
                signs = self._signs(parsed[index], parsed.values())
                if signs:
                    notes[grade_id(cell)] = (f"needs manual review: its {self.method} {', '.join(signs)} "
                                             "(numerical differentiation, not backpropagation?)")
        if notes:
            ids = (info["notebook"], info["assignment"], info["student"])
            with Gradebook(info["db_url"]) as gb:
                for answer, note in notes.items():
                    try:
                        gb.find_grade(self.cells[answer], *ids).needs_manual_grade = True
                        gb.find_comment(answer, *ids).auto_comment = note
                    except MissingEntry:
                        self.log.warning("FlagNumericalBackward: %s or %s is not in the gradebook", answer,
                                         self.cells[answer])
                gb.db.commit()
            problems = nb.metadata.setdefault(METADATA_KEY, {}).setdefault(PROBLEMS, [])
            problems += [f"{answer}: {note}" for answer, note in notes.items()]
        return nb, resources

    def parse_cells(self, nb):
        """({cell index: AST nodes} of the code cells within the budget, [one line per cell not read])."""
        parsed, unread, total = {}, [], 0
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            size = len(cell.source.encode("utf-8", "surrogatepass"))
            total += size
            if size > self.max_cell_kb << 10:
                unread.append(f"code cell {index} is {_kb(size)} (over {self.max_cell_kb} KB) and was not read")
            elif total > self.max_notebook_kb << 10:
                unread.append(f"the code cells are over {self.max_notebook_kb} KB in all and cells {index} on "
                              "were not read")
                break
            else:
                nodes = _walk(cell.source)
                if nodes is None:
                    unread.append(f"code cell {index} nests too deep to be read")
                parsed[index] = nodes or []
        return parsed, unread

    def numerical_signs(self, answer, sources):
        """What in `answer`'s backward (and the notebook functions it calls, from `sources`) looks numerical."""
        return self._signs(_walk(answer) or [], [_walk(source) or [] for source in sources])

    def _signs(self, answer_nodes, all_nodes):
        defs = {}
        for nodes in all_nodes:
            for name, node in _definitions(nodes):
                defs.setdefault(name, []).append(node)
        todo = [node for name, node in _definitions(answer_nodes) if name == self.method]
        seen, signs = {self.method, *self.forward_names}, []
        while todo:
            for node in ast.walk(todo.pop()):
                name = _name(node.func) if isinstance(node, ast.Call) else None
                if name in defs and name not in seen:     # a helper of the notebook: read it too
                    seen.add(name)
                    todo += defs[name]
                signs.append(self._sign(node, name))
        return [text for _, text in sorted({s for s in signs if s})]

    def _sign(self, node, called):
        """(rank, what it shows) of one node of backward, or None."""
        value = node.value if isinstance(node, ast.Constant) else _fold_strings(node)
        if called in self.forward_names or value in self.forward_names:
            return 0, "calls forward"
        if isinstance(value, complex) or _name(node) in self.complex_names or value in self.complex_names:
            return 1, "uses complex numbers"
        if called in self.numerical_names:
            return 2, f"calls {called}"
        named = (called in ("getattr", "__getattribute__") and len(node.args) >= 2
                 and _fold_strings(node.args[-1 if called == "__getattribute__" else 1]) is not None)
        if (called in self.dynamic_names and not named) or (isinstance(node, ast.Attribute)
                                                            and node.attr in self.dynamic_names):
            return 3, f"reaches code by a name built at run time ({called or node.attr})"
        step = value if type(value) is float else _fold_numbers(node)
        if type(step) is float and 0 < abs(step) <= self.max_step:
            return 4, f"uses a finite-difference step ({abs(step):g})"
        if called in self.step_names:
            return 4, f"uses a finite-difference step ({called})"
        return None


def _kb(size):
    return f"{size / 1024:.0f} KB" if size < 1 << 20 else f"{size / (1 << 20):.1f} MB"


_OPERATORS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
              ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b}


def _fold_numbers(node, depth=0):
    """The float value of a constant arithmetic expression of numbers (``2.0 ** -20``, ``-1 / 1e6``), computed
    with floats only (no big integers), or None."""
    if depth > 20:
        return None
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _fold_numbers(node.operand, depth + 1)
        return None if value is None else (-value if isinstance(node.op, ast.USub) else value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS and not isinstance(node, ast.Constant):
        left, right = _fold_numbers(node.left, depth + 1), _fold_numbers(node.right, depth + 1)
        try:
            value = _OPERATORS[type(node.op)](left, right) if None not in (left, right) else None
        except (ArithmeticError, ValueError):
            return None
        return value if isinstance(value, float) and math.isfinite(value) else None
    return None


def _fold_strings(node, depth=0):
    """The value of a constant expression of strings (``"for" + "ward"``, an f-string of constants), or None."""
    if depth > 20:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _fold_strings(node.left, depth + 1), _fold_strings(node.right, depth + 1)
        return left + right if left is not None and right is not None and len(left) + len(right) < 256 else None
    if isinstance(node, ast.JoinedStr):
        parts = [_fold_strings(value, depth + 1) for value in node.values]
        return "".join(parts) if None not in parts else None
    return None


def _definitions(nodes):
    """(name, node) of every function among a source's AST nodes: ``def name`` and ``name = lambda ...``."""
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
            yield from ((target.id, node.value) for target in node.targets if isinstance(target, ast.Name))


def _walk(source):
    """Every AST node of `source`; [] for a syntax error, None when the parse runs out of recursion or memory."""
    try:
        return list(ast.walk(ast.parse(source)))
    except (SyntaxError, ValueError):
        return []
    except (RecursionError, MemoryError):
        return None


def _name(node):
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
