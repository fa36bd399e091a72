"""The grader's expected gradients: the instructor's reference backward passes (source/ex09_backprop/
gradcheck_reference.py, never released).

    .venv/bin/python -m pytest tests/test_reference_grads.py -q

* the reference is right: proved against full finite differences on every case shape of every item (the small
  shapes entry by entry; the large shapes, whose full finite differences take hours, on 40 random entries each);
* a wrong reference cannot grade: it disagrees with finite differences along the random direction and the checker
  falls back to finite differences, so a right answer keeps its points and a wrong one loses them;
* graded cases use it (a right answer's max rel. error is ~1e-14), public cases never do (numerical gradients, as
  students are told), and without it (a student's own copy) every catalogued bug keeps its points and diagnosis.
"""
import types

import numpy as np
import pytest

from test_gradcheck import ITEMS, NOTEBOOK_TESTS, answer_cells, engine, gradcheck, ref, run_grade

import gradcheck_reference as reference  # noqa: E402 -- on sys.path through test_gradcheck
from grading.fixtures.bug_catalog import BUGS

SAMPLED = 40   # entries of a large input whose finite difference is taken


def _fd_at(f, x, d_out, idx):
    """Central differences of sum(f(x) * d_out) at the flat indices idx (gradcheck.numerical_gradient's rule)."""
    x = np.array(x, dtype=np.float64)
    flat, out = x.reshape(-1), np.zeros(len(idx))
    for k, i in enumerate(idx):
        old = flat[i]
        h = gradcheck.EPS * max(1.0, abs(old))
        flat[i] = old + h
        plus, step = f(x), flat[i]
        flat[i] = old - h
        minus, step = f(x), step - flat[i]
        flat[i] = old
        out[k] = np.sum((np.asarray(plus) - np.asarray(minus)) * d_out) / step
    return out


def _problems(item, case):
    """(label, forward of that input alone, input, d_out, the reference's gradient, the sum of |terms| of L that
    sets its rounding noise) of one case."""
    if item in ("nll_grad", "LogisticRegression.step"):
        X, Y = case["X"], case["Y"]
        nll = engine.directional_derivatives.__globals__["nll"]
        for _, W, b in case["points"][:1 if item != "nll_grad" else None]:
            d_W, d_b = reference.nll_grad(X, W, b, Y)
            magnitude = abs(nll(X, W, b, Y)) + 1.0   # as gradcheck_compare.nll_target
            yield "d_W", (lambda W_, b=b: nll(X, W_, b, Y)), W, 1.0, d_W, magnitude
            yield "d_b", (lambda b_, W=W: nll(X, W, b_, Y)), b, 1.0, d_b, magnitude
        return
    cls = engine.ITEMS[item].impl_name
    forward = {"Multiply": lambda x, y: x * y, "Sum": np.sum, "DotProduct": np.dot}[cls]
    inputs, d_out = case["inputs"], case["d_out"]
    grads = reference.LAYERS[cls](inputs, d_out)
    magnitude = float(np.sum(np.abs(forward(*map(np.abs, inputs)) * d_out)))   # as gradcheck_layers
    for i, g in enumerate(grads):
        def f(v, i=i):   # the forward pass as a function of input i alone
            return forward(*[v if j == i else inputs[j] for j in range(len(inputs))])
        yield f"d_{'xy'[i]}", f, inputs[i], d_out, g, magnitude


@pytest.mark.parametrize("item", ITEMS)
def test_the_reference_matches_full_finite_differences_on_every_case_shape(item):
    seeds = NOTEBOOK_TESTS[item][1]
    cases = engine.ITEMS[item].cases(seeds[:1], large=True)   # every shape once, then the large case
    rng = np.random.default_rng(5)
    for case in cases:
        for label, f, x, d_out, g, magnitude in _problems(item, case):
            assert g.shape == np.shape(x) and g.dtype == np.float64, (label, g.shape)
            idx = (np.arange(x.size) if "large" not in case or x.size <= SAMPLED
                   else rng.choice(x.size, SAMPLED, replace=False))
            want = _fd_at(f, x, d_out, idx)
            got = g.reshape(-1)[idx]
            # the checker's floor: finite differences resolve no gradient below their rounding noise
            noise = engine.NOISE_ULPS * np.finfo(np.float64).eps * magnitude / gradcheck.EPS
            floor = max(engine.FLOOR * np.max(np.abs(want)), noise / gradcheck.TOL)
            assert gradcheck.rel_error(got, want, floor).max() <= gradcheck.TOL, (item, label, np.shape(x))


def _doubled():
    """A reference with every gradient doubled."""
    layers = {cls: (lambda inputs, d_out, fn=fn: [2 * g for g in fn(inputs, d_out)])
              for cls, fn in reference.LAYERS.items()}
    return types.SimpleNamespace(LAYERS=layers, nll_grad=lambda *a: tuple(2 * g for g in reference.nll_grad(*a)))


def _raising():
    """A reference that crashes."""
    def fail(*args):
        raise ValueError("broken reference")
    return types.SimpleNamespace(LAYERS={cls: fail for cls in reference.LAYERS}, nll_grad=fail)


def _run(item, impl, ref_module, seeds=(1,)):
    """item's sub-checks on its graded cases (with the large one) compared with ``ref_module``."""
    spec, earned = engine.ITEMS[item], {}
    for case in spec.cases(seeds, large=True):
        for name, (ok, _, err) in spec.run(impl, dict(case, reference=ref_module, vseed=3)).items():
            earned[name] = earned.get(name, True) and ok
    return earned


@pytest.mark.parametrize("wrong", [_doubled, _raising], ids=lambda f: f.__name__)
@pytest.mark.parametrize("item", ITEMS)
def test_a_wrong_reference_never_grades(item, wrong):
    assert all(_run(item, ref.IMPLS[item], wrong()).values())
    bug = next(b for b in BUGS if b.item == item)   # and a wrong answer keeps losing its points
    assert not all(_run(item, answer_cells(bug)[item], wrong()).values()), bug.name


@pytest.mark.parametrize("item", ITEMS)
def test_graded_cases_use_the_reference_and_public_cases_numerical_gradients(item):
    graded = engine.run_checks(item, ref.IMPLS[item], seeds=(1,), large=True)
    public = engine.run_checks(item, ref.IMPLS[item], cases=engine.ITEMS[item].public())
    errors = [r.max_rel_error for r in graded.values() if r.check.startswith(("d_", "W", "b"))]
    assert errors and max(errors) < 1e-12
    public_errors = [r.max_rel_error for r in public.values() if r.check.startswith(("d_", "W", "b"))]
    if item not in ("Multiply.backward", "Sum.backward"):   # their finite differences are often exact
        assert max(public_errors) > 1e-12


def test_grade_says_what_it_compared_with(monkeypatch):
    _, out = run_grade("nll_grad", ref.nll_grad)
    assert "max rel. error" in out and out.count("against the reference gradient") == 2
    monkeypatch.setattr(engine, "USE_REFERENCE", False)   # a student's copy: no gradcheck_reference.py
    _, out = run_grade("nll_grad", ref.nll_grad)
    assert "max rel. error" in out and "reference" not in out


@pytest.mark.parametrize("bug", BUGS, ids=lambda bug: bug.name)
def test_without_the_reference_every_bug_keeps_its_points_and_diagnosis(bug, monkeypatch):
    monkeypatch.setattr(engine, "USE_REFERENCE", False)
    points, out = run_grade(bug.item, answer_cells(bug)[bug.item])
    assert points == bug.expected_points, out
    if bug.diagnosis is not None:
        assert bug.diagnosis in out, out
