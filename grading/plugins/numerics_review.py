"""``FlagNumericalBackward``: elementwise answers whose backward differentiates numerically go to manual review.

For an elementwise layer (Multiply, Sum) one complex-step or finite-difference pass costs no more than
backpropagation, so the large hidden case (gradcheck_engine's ``LARGE``) cannot tell them apart. This step reads
the answer cell's source -- parsed with :mod:`ast`, never executed -- and flags the item when its ``backward`` (or a
function of the notebook that backward calls) calls a forward pass, uses complex numbers, calls a numerical
differentiator, or uses a finite-difference step. A flag never changes the points: the test cell's grade gets
nbgrader's own ``needs_manual_grade`` (formgrader lists the submission under "needs manual grade"), the answer
cell's comment and the grade report (``nb.metadata.grading.problems``) say why in one line.

Runs after ``SaveAutoGrades`` in ``c.Autograde.autograde_preprocessors``, which would otherwise reset the flag.
"""
import ast

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Dict, Float, List, Unicode

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
    max_step = Float(1e-3, help="A float literal 0 < |v| <= max_step in backward is a finite-difference "
                                "step.").tag(config=True)

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        notes = {}
        for cell in nb.cells:
            if cell.cell_type == "code" and grade_id(cell) in self.cells:
                signs = self.numerical_signs(cell.source, code)
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

    def numerical_signs(self, answer, sources):
        """What in `answer`'s backward (and the notebook functions it calls, from `sources`) looks numerical."""
        defs = {}
        for source in sources:
            for name, node in _definitions(source):
                defs.setdefault(name, []).append(node)
        todo = [node for name, node in _definitions(answer) if name == self.method]
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
        value = node.value if isinstance(node, ast.Constant) else None
        if called in self.forward_names or value in self.forward_names:
            return 0, "calls forward"
        if isinstance(value, complex) or _name(node) in self.complex_names or value in self.complex_names:
            return 1, "uses complex numbers"
        if called in self.numerical_names:
            return 2, f"calls {called}"
        if type(value) is float and 0 < abs(value) <= self.max_step:
            return 3, f"uses a finite-difference step ({value:g})"
        return None


def _definitions(source):
    """(name, node) of every function a source defines: ``def name`` and ``name = lambda ...``."""
    for node in _walk(source):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
            yield from ((target.id, node.value) for target in node.targets if isinstance(target, ast.Name))


def _walk(source):
    try:
        return list(ast.walk(ast.parse(source)))
    except (SyntaxError, ValueError):
        return []


def _name(node):
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
