"""Tests of the gradient checker shipped to students (source/ex09_backprop/gradcheck.py and the engine behind it,
gradcheck_engine.py).

    .venv/bin/python -m pytest tests/test_gradcheck.py -q

* the reference solutions earn full points, and no false failure in 2,000 random
  trials per item (random seed, shapes with distinct dimensions, random scales);
* every entry of the bug catalog earns exactly its expected points, loses them only
  in its own item, and gets its diagnosis;
* the checker keeps the interaction contract: it gives the same grades when impl is
  a remote proxy (arguments and results cross by copy, in-place changes are
  written back) and does nothing to impl but call it, call methods and get/set
  ``params``;
* self_check prints one line (and a hint line to see every sub-check) and never raises; grade is deterministic;
* the item registry is the one home of the points: the notebook's test cells and docs/grading.md's table agree with
  it, and a new layer item is declared in one call;
* check_all's table, the notebook demos that wait for unfinished answers, the training-loss warnings.
"""
import contextlib
import copy
import io
import multiprocessing
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "source" / "ex09_backprop"
for path in (str(SOURCE), str(REPO)):   # REPO first: the top-level nn.py is the one true copy
    if path not in sys.path:
        sys.path.insert(0, path)

import gradcheck  # noqa: E402
import gradcheck_engine as engine  # noqa: E402
import nbformat  # noqa: E402
from conftest import SOURCE_NB  # noqa: E402
from grading.fixtures import reference_solutions as ref  # noqa: E402
from grading.fixtures.bug_catalog import BUGS  # noqa: E402
from grading.notebook_items import graded_items  # noqa: E402

ITEMS = list(engine.ITEMS)
TRIALS = 2000


# item -> (its test cell's nbgrader points, the seeds its hidden grade() call passes, the answer cell's source),
# read from the instructor notebook (grading/notebook_items.py).
NOTEBOOK_TESTS = {item.name: (item.points, item.seeds, item.answer_source) for item in graded_items(SOURCE_NB)}


def test_every_hidden_grade_call_checks_the_large_case_too():
    sources = [c.source for c in nbformat.read(SOURCE_NB, as_version=4).cells
               if c.metadata.get("nbgrader", {}).get("grade") and "gradcheck.grade(" in c.source]
    assert len(sources) == len(NOTEBOOK_TESTS)
    assert all(re.search(r'gradcheck\.grade\("[^"]+", \w+, seeds=\([\d, ]+\), large=True\)', s) for s in sources)
TOTALS = {item: points for item, (points, _, _) in NOTEBOOK_TESTS.items()}   # nbgrader's points per test cell


def run_grade(item, impl, **kw):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        points = gradcheck.grade(item, impl, **kw)
    return points, out.getvalue()


def run_self_check(item, impl, autograding=False):
    """What self_check printed, and on which stream: a pass on stdout, a failure on stderr (stdout while
    autograding, where nbgrader would zero a test cell that wrote to stderr). One line; a failure outside
    autograding adds one line saying how to see every sub-check."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if autograding:
            mp.setenv("NBGRADER_EXECUTION", "autograde")
        result = gradcheck.self_check(item, impl)
    assert result is None and not (out.getvalue() and err.getvalue())
    printed = out.getvalue() or err.getvalue()
    assert (printed.startswith("✓") or autograding) == bool(out.getvalue()), printed
    lines = printed.splitlines()
    if printed.startswith("✗") and not autograding and item in engine.ITEMS:
        assert printed.count("\n") == 2, printed
        hint = f'  every sub-check and its points: gradcheck.grade("{item}", {engine.ITEMS[item].impl_name})'
        assert lines[1] == hint, printed
        return lines[0] + "\n"
    return printed


def test_failed_self_check_goes_to_stdout_only_while_autograding():
    assert run_self_check("Multiply.backward", None, autograding=True).startswith("✗")
    assert run_self_check("Multiply.backward", None).startswith("✗")


def answer_cells(bug=None):
    """Namespace of a notebook where every answer is the reference, except ``bug``'s."""
    namespace = ref.notebook_globals()
    for source in ref.SOURCES.values():
        exec(source, namespace)
    if bug is not None:
        exec(bug.source, namespace)
    return {item: namespace[ref.NAMES[item]] for item in ITEMS}


# ---------------------------------------------------------------- the table

def test_items_and_points():
    assert len(TOTALS) == len(engine.ITEMS) >= 5
    assert {item: spec.total for item, spec in engine.ITEMS.items()} == TOTALS
    for spec in engine.ITEMS.values():
        assert "inputs unchanged" in spec.points
        assert all(points > 0 for points in spec.points.values())


def points_table():
    """docs/grading.md's points table, rendered from the registry."""
    rows = ["| item (points) | sub-checks and points |", "|---|---|"]
    for item, spec in engine.ITEMS.items():
        split = ", ".join(f"{name} {points:g}" for name, points in spec.points.items())
        rows.append(f"| `{item}` ({spec.total:g}) | {split} |")
    return "\n".join(rows)


def test_docs_points_table_is_the_registry():
    page = (REPO / "docs" / "grading.md").read_text()
    assert points_table() in page, "docs/grading.md's points table drifted; it should read:\n" + points_table()
    assert page.count("| item (points) |") == 1


def test_bug_catalog_points_fit_the_registry():
    for bug in BUGS:   # every expected grade is a sum of some sub-checks' points
        points = list(engine.ITEMS[bug.item].points.values())
        sums = {round(sum(p for k, p in enumerate(points) if mask >> k & 1), 9) for mask in range(1 << len(points))}
        assert round(bug.expected_points, 9) in sums, bug.name


# ------------------------------------------------------- correct solutions

@pytest.mark.parametrize("item", ITEMS)
def test_reference_gets_full_points(item):
    points, out = run_grade(item, ref.IMPLS[item])
    assert points == TOTALS[item] and type(points) is float, out
    assert "✗" not in out
    line = run_self_check(item, ref.IMPLS[item])
    assert re.fullmatch(rf"✓ {re.escape(item)} matches numerical gradients, max rel\. error \S+\n", line)


@pytest.mark.parametrize("item", ITEMS)
def test_reference_full_points_with_notebook_seeds(item):
    seeds = NOTEBOOK_TESTS[item][1]
    assert len(seeds) >= 3
    assert run_grade(item, ref.IMPLS[item], seeds=seeds, large=True)[0] == TOTALS[item]


def _trials(args):
    """Run random trials of one item; return (failures, max error). Module level: picklable."""
    item, seeds = args
    impl, spec = ref.IMPLS[item], engine.ITEMS[item]
    failures, worst = [], 0.0
    for s in seeds:
        res = engine.run_checks(item, impl, cases=[spec.random(np.random.default_rng([7, s]))])
        failures += [(s, name, r.code) for name, r in res.items() if not r.passed]
        worst = max([worst] + [r.max_rel_error for r in res.values() if r.max_rel_error is not None])
    return failures, worst


@pytest.mark.parametrize("item", ITEMS)
def test_no_false_failures_in_random_trials(item):
    workers = max(1, min(4, os.cpu_count() or 1))
    chunks = [(item, range(k, TRIALS, workers)) for k in range(workers)]
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(_trials, chunks))
    else:
        results = [_trials(chunks[0])]
    failures = [f for fs, _ in results for f in fs]
    worst = max(w for _, w in results)
    assert not failures, failures[:5]
    assert worst < gradcheck.TOL / 5    # keep a margin; see benchmarks/RESULTS-gradcheck.txt


def test_notebook_solutions_get_full_points():
    for item, (points, _, answer) in NOTEBOOK_TESTS.items():
        source = "\n".join(line for line in answer.splitlines()
                           if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
        impl = ref.build(source, engine.ITEMS[item].impl_name)
        assert run_grade(item, impl)[0] == points, item


# --------------------------------------------------------------- bug catalog

def test_catalog_covers_the_named_mistakes():
    assert len(BUGS) >= 22
    assert len({bug.name for bug in BUGS}) == len(BUGS)
    for item in ITEMS:
        assert sum(bug.item == item for bug in BUGS) >= 3, item
    for bug in BUGS:
        assert 0 <= bug.expected_points <= TOTALS[bug.item]
    named = " | ".join(bug.diagnosis for bug in BUGS if bug.diagnosis)
    for mistake in ["sign flipped", "constant factor", "missing 1/N", "extra 1/N", "transposed",
                    "d_out ignored", "outputs swapped", "wrong axis", "returned None", "modified its input",
                    "right only at W = 0", "stale cache", "float32", "after the update",
                    "learning rate ignored", "not updated", "not implemented yet", "has shape",
                    "expected a numpy array", "expected a tuple", "did you sum?"]:
        assert mistake in named, mistake


@pytest.mark.parametrize("bug", BUGS, ids=lambda bug: bug.name)
def test_bug_catalog_entry(bug):
    impls = answer_cells(bug)
    points, out = run_grade(bug.item, impls[bug.item])
    assert points == bug.expected_points, out
    if bug.diagnosis is not None:
        assert bug.diagnosis in out, out
    assert "Traceback" not in out and 'File "' not in out
    line = run_self_check(bug.item, impls[bug.item])
    assert line.count("\n") == 1 and line.startswith("✓" if points == TOTALS[bug.item] else "✗"), line
    for item in ITEMS:   # the other answers are untouched: they lose nothing
        if item != bug.item:
            assert run_grade(item, impls[item], seeds=engine.GRADE_SEEDS[:1])[0] == TOTALS[item], item


# ------------------------------------------------------ interaction contract

PLAIN = (np.ndarray, float, int, bool, str, type(None), np.floating, np.integer)


class Remote:
    """What the secure autograder hands the checker: a proxy to an object in another process.

    Arguments cross by (deep) copy; after every call, changes the other side made to
    any array it was ever sent are written back into the caller's array; plain results
    (arrays, numbers, and tuples/lists/dicts of them) come back by copy, anything else
    as another Remote. Everything else the checker might try on impl fails loudly.
    """

    def __init__(self, target, session):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_session", session)   # {"log": [...], "sent": [(mine, theirs)]}

    @staticmethod
    def _plain(v):
        if type(v) in (tuple, list):
            return all(Remote._plain(u) for u in v)
        if type(v) is dict:
            return all(type(k) is str and Remote._plain(u) for k, u in v.items())
        return isinstance(v, PLAIN)

    def _back(self, v):
        """A result crossing back: containers rebuilt, plain leaves copied, others proxied."""
        if type(v) in (tuple, list):
            return type(v)(self._back(u) for u in v)
        if type(v) is dict:
            return {k: self._back(u) for k, u in v.items()}
        return copy.deepcopy(v) if isinstance(v, PLAIN) else Remote(v, self._session)

    def _invoke(self, fn, args, kwargs):
        sent = copy.deepcopy((args, kwargs))
        self._session["sent"] += [(mine, theirs) for mine, theirs in zip(args, sent[0])
                                  if type(mine) is np.ndarray]
        result = fn(*sent[0], **sent[1])
        for mine, theirs in self._session["sent"]:    # write in-place changes back
            if mine.shape == theirs.shape and not np.array_equal(mine, theirs):
                mine[...] = theirs
        return self._back(result)

    def __call__(self, *args, **kwargs):
        self._session["log"].append(("call", None))
        return self._invoke(self._target, args, kwargs)

    def __getattr__(self, name):
        value = getattr(self._target, name)
        self._session["log"].append(("getattr", name))
        if callable(value):
            return lambda *a, **k: self._invoke(value, a, k)
        assert Remote._plain(value), f"attribute {name} is not a plain value"
        return copy.deepcopy(value)

    def __setattr__(self, name, value):
        assert Remote._plain(value), "the checker may only set plain values"
        self._session["log"].append(("setattr", name))
        setattr(self._target, name, copy.deepcopy(value))

    def _refuse(self, *args, **kwargs):
        raise AssertionError("the checker introspected or operated on impl")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __len__ = __iter__ = _refuse
    __add__ = __sub__ = __mul__ = __array__ = __float__ = __index__ = __getitem__ = _refuse
    __hash__ = None


PROXY_CASES = [None, "multiply_mutates_d_out", "multiply_stale_cache", "multiply_lookalike_always_equal",
               "sum_overwrites_x", "dot_product_outer", "nll_grad_mutates_y", "nll_grad_outputs_swapped",
               "step_modifies_x", "step_loss_after_update", "step_in_place_update", "step_b_not_updated"]


@pytest.mark.parametrize("name", PROXY_CASES, ids=str)
def test_same_grade_through_a_remote_proxy(name):
    bugs = {bug.name: bug for bug in BUGS}
    items = ITEMS if name is None else [bugs[name].item]
    impls = answer_cells(bugs.get(name))
    for item in items:
        session = {"log": [], "sent": []}
        direct = run_grade(item, impls[item])
        proxied = run_grade(item, Remote(impls[item], session))
        assert proxied[0] == direct[0]
        marks = lambda out: [line.split()[:2] for line in out.splitlines()]   # noqa: E731
        assert marks(proxied[1]) == marks(direct[1])
        if "lookalike" not in str(name):   # there the type name differs: Remote, not Anything
            assert proxied[1] == direct[1]
        allowed = {("call", None), ("getattr", "forward"), ("getattr", "backward"), ("getattr", "step"),
                   ("getattr", "params"), ("setattr", "params")}
        assert set(session["log"]) <= allowed, set(session["log"]) - allowed


# --------------------------------------------------- robustness, determinism

class _Raises:
    def __init__(self, *args):
        raise ValueError("constructor fails\nsecond line")


class _Exits:
    def forward(self, *args):
        pass

    def backward(self, d_out):
        sys.exit(3)


class _SelfContaining:
    def forward(self, *args):
        pass

    def backward(self, d_out):
        result = []
        result.append(result)
        return result


class _ReturnsDict:
    def __init__(self, *args):
        self.params = "not a dict"

    def forward(self, *args):
        pass

    def backward(self, d_out):
        return {"d_x": d_out}

    def step(self, X, Y):
        return {"loss": 1.0}


def _nan(*args):
    return np.full((5, 3), np.nan), np.full(3, np.nan)


@pytest.mark.parametrize("impl", [None, 42, "Multiply", _Raises, _Exits, _SelfContaining, _ReturnsDict, _nan,
                                  lambda *a: None], ids=str)
@pytest.mark.parametrize("item", ITEMS)
def test_weird_impls_never_raise(item, impl):
    line = run_self_check(item, impl)
    assert line.count("\n") == 1 and line.startswith(f"✗ {item}: "), line
    points, out = run_grade(item, impl, seeds=engine.GRADE_SEEDS[:1])
    assert points == 0.0 and "Traceback" not in out, out


def test_a_release_stub_with_only_its_raise_removed_earns_nothing():
    from conftest import RELEASE_DIR
    stubs, answer = {}, None
    for cell in nbformat.read(RELEASE_DIR / "backprop.ipynb", as_version=4).cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            answer = cell.source
        m = re.search(r'self_check\("([^"]+)"', cell.source)
        if m:
            stubs[m.group(1)] = answer.replace("raise NotImplementedError()", "")
    assert sorted(stubs) == sorted(ITEMS)
    for item, source in stubs.items():
        points, out = run_grade(item, ref.build(source, engine.ITEMS[item].impl_name))
        assert points == 0.0, out


def test_not_implemented_message():
    class Multiply:
        def forward(self, x, y):
            self.cache = (x, y)
            return x * y

        def backward(self, d_out):
            raise NotImplementedError()
    assert run_self_check("Multiply.backward", Multiply) == \
        "✗ Multiply.backward: not implemented yet (NotImplementedError)\n"


def test_no_seeds_is_an_error_not_full_points():
    with pytest.raises(ValueError):
        gradcheck.grade("Multiply.backward", ref.Multiply, seeds=())


def test_unknown_item():
    assert run_self_check("Nope", ref.Multiply).startswith("✗ Nope: unknown item")


def test_grade_is_deterministic():
    bugs = {bug.name: bug for bug in BUGS}
    impl = answer_cells(bugs["multiply_sign_flipped_d_y"])["Multiply.backward"]
    assert run_grade("Multiply.backward", impl) == run_grade("Multiply.backward", impl)
    assert run_grade("nll_grad", ref.nll_grad) == run_grade("nll_grad", ref.nll_grad)


# ------------------------------------------------------------------ numerics

def test_numerical_gradient_and_directions():
    rng = np.random.default_rng(0)
    x, d = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    g = gradcheck.numerical_gradient(lambda v: v ** 3, x, d)
    assert np.allclose(g, 3 * x ** 2 * d, rtol=1e-8, atol=1e-10)
    before = x.copy()
    analytic, numeric = engine.directional_derivatives(lambda v: v ** 3, x, d, 3 * x ** 2 * d, seed=1)
    assert np.array_equal(x, before)
    assert np.allclose(analytic, numeric, rtol=1e-7) and analytic.shape == (engine.NUM_PROBES,)
    assert gradcheck.rel_error(np.zeros(3), np.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    assert gradcheck.rel_error([1e-12], [0.0], floor=1e-3)[0] == pytest.approx(1e-9)


def test_checker_does_not_contain_the_solutions():
    checker = " ".join(word for module in sorted(SOURCE.glob("gradcheck*.py"))   # the checker's modules
                       for word in module.read_text().split())
    for source in ref.SOURCES.values():
        for line in source.splitlines():
            line = line.strip()
            if any(key in line for key in ("d_out *", "probas", "grads[p]", "ones_like")):
                assert line not in checker, line
    assert "scipy" not in checker   # the loss comes from nn.CategoricalCrossEntropy only


# ------------------------------------------------------------ the item registry

RELU = '''
class ReLU:
    def forward(self, x):
        self.cache = x
        return np.maximum(x, 0)

    def backward(self, d_out):
        return d_out * (self.cache > 0)
'''
RELU_POINTS = {"outputs": 0.25, "d_x": 0.5, "latest cache": 0.125, "inputs unchanged": 0.125}


def test_a_new_layer_item_is_declared_in_one_call(monkeypatch):
    relu = engine.layer_item("ReLU", lambda x: np.maximum(x, 0), ("x",), RELU_POINTS, [(3, 5), (6,), (2, 3, 4)],
                             example=(np.array([-1.5, -0.5, 0.5, 1.5]),), example_d_out=np.ones(4))
    monkeypatch.setitem(engine.ITEMS, "ReLU.backward", relu)
    correct = ref.build(RELU, "ReLU")
    assert run_grade("ReLU.backward", correct) == (1.0, run_grade("ReLU.backward", correct)[1])
    assert run_self_check("ReLU.backward", correct).startswith("✓ ReLU.backward matches")
    d_out_ignored = ref.build(RELU.replace("d_out * (self.cache > 0)", "1.0 * (self.cache > 0)"), "ReLU")
    points, out = run_grade("ReLU.backward", d_out_ignored)
    assert points == 0.375 and "d_out ignored" in out, out   # outputs and inputs unchanged only
    with pytest.raises(ValueError, match="must name exactly"):
        engine.layer_item("ReLU", np.abs, ("x",), {"d_x": 1.0}, [(3, 5)], example=(np.ones(4),),
                          example_d_out=np.ones(4))


def test_observers_see_every_graded_comparison():
    seen = []
    with engine.observe(seen.append):
        engine.run_checks("nll_grad", ref.nll_grad, seeds=(1,))
    run_grade("nll_grad", ref.nll_grad, seeds=(1,))   # no longer observed
    assert {c.label for c in seen} == {"d_W", "d_b"} and len(seen) == 12   # 3 cases x 2 points x 2 gradients
    for c in seen:
        assert c.got.shape == c.expected.shape and c.floor > 0 and c.noise > 0
        assert gradcheck.rel_error(c.got, c.expected, c.floor).max() <= gradcheck.TOL


# ------------------------------------------------------------ check_all, demos, training warnings

def run_check_all(namespace):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert gradcheck.check_all(namespace) is None
    return out.getvalue().splitlines()


def test_check_all_table():
    total = sum(TOTALS.values())
    lines = run_check_all(ref.notebook_globals() | {name: ref.IMPLS[item] for item, name in ref.NAMES.items()})
    assert lines[-1] == f"Public checks: {total:g}/{total:g} points"
    assert [line.split()[:3] for line in lines[1:-1]] == [["✓", item, f"{TOTALS[item]:g}/{TOTALS[item]:g}"]
                                                         for item in ITEMS]
    lines = run_check_all({})
    assert lines[-1] == f"Public checks: 0/{total:g} points"
    not_defined = "is not defined: run its cell (and fix any error it shows)"
    assert all(line.startswith("✗ ") and line.endswith(not_defined) for line in lines[1:-1])
    bugs = {bug.name: bug for bug in BUGS}
    impls = answer_cells(bugs["step_b_not_updated"])
    lines = run_check_all({ref.NAMES[item]: impl for item, impl in impls.items()})
    assert lines[-1] == f"Public checks: {total - 0.5:g}/{total:g} points"
    step = next(line for line in lines if " LogisticRegression.step " in line)
    assert step.startswith("✗ LogisticRegression.step") and "1.5/2  b update: b was not updated" in step


def test_check_all_never_raises():
    assert run_check_all(None)[-1] == f"Public checks: 0/{sum(TOTALS.values()):g} points"
    assert run_check_all({"Multiply": 42, "Sum": _Exits, "nll_grad": _nan})[-1].startswith("Public checks: 0/")


def test_demo_skips_an_unfinished_answer_and_shows_every_other_error():
    class Sum:
        def backward(self, d_out):
            raise NotImplementedError()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        with gradcheck.demo():
            Sum().backward(1.0)
            print("never reached")
    assert out.getvalue() == "Sum.backward is not implemented yet — skipping this demo\n"
    with pytest.raises(ValueError, match="finished but wrong"):
        with gradcheck.demo():
            raise ValueError("finished but wrong")


def _losses(values):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with gradcheck.training("nll_grad") as losses:
            losses.extend(values)
    return out.getvalue() + err.getvalue()


def test_training_warns_when_the_loss_goes_up_explodes_or_stalls():
    correct = [2.3026, 1.8401, 1.5054, 1.2737, 1.1497, 1.0450, 1.1095, 0.8967, 0.0921]   # the seed run dips once
    assert _losses(correct) == "" and _losses([]) == "" and _losses([None]) == ""
    up = _losses([2.3026, 32.37, 1978.4, 0.1])
    assert up.startswith("⚠ The training loss went up, from 2.3026 at epoch 0 to 1978 at epoch 2") and \
        "look at the nll_grad self-check above" in up
    assert "became nan at epoch 1" in _losses([2.3, float("nan")])
    assert "hardly went down: 2.3026 at epoch 0, 2.1861 at epoch 2" in _losses([2.3026, 2.25, 2.1861])
    with pytest.raises(TypeError), gradcheck.training("nll_grad"):   # a finished answer's error is not swallowed
        f"{None:.4f}"
