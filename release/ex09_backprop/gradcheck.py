"""The gradient checker of exercise 9: it compares your gradients with numerical ones.

In the notebook::

    import gradcheck
    gradcheck.self_check("Multiply.backward", Multiply)   # ✓, or the first thing that looks wrong
    gradcheck.grade("Multiply.backward", Multiply)        # every sub-check with its points
    gradcheck.check_all(globals())                        # one table: every item, public points

The grader runs these same checks (with more seeds and shapes, and one large case per item).

What is called, and what must come back
---------------------------------------
=========================  ================================================================================
Multiply.backward          ``m = Multiply(); m.forward(x, y); m.backward(d_out)`` -> ``(d_x, d_y)``,
                           shaped like x and y (any shape; d_out too)
Sum.backward               ``s = Sum(); s.forward(x); s.backward(d_out)``, d_out a float -> ``d_x`` shaped like x
DotProduct.backward        ``p = DotProduct(); p.forward(x, y); p.backward(d_out)``, x and y of shape (M,),
                           d_out a float -> ``(d_x, d_y)``
nll_grad                   ``nll_grad(X, W, b, Y)`` -> ``(d_W, d_b)``, shapes (D, K) and (K,)
LogisticRegression.step    ``m = LogisticRegression(D, K, lr); m.params = {'W': W0, 'b': b0}``;
                           ``loss = m.step(X, Y)`` -> the loss BEFORE the update (a float); then
                           ``m.params`` -> ``{'W': (D, K), 'b': (K,)}`` after one gradient-descent step
=========================  ================================================================================

* Everything passed in is float64. Gradients must come back as plain ``np.ndarray`` of float64: not a
  number, not a list. A list works where a tuple is expected.
* Shapes have no two dimensions equal (a transposed gradient cannot pass); d_out is random (never all
  ones); nll_grad is checked at random W, b and at W = 0, b = 0; step uses random W0, b0 and lr = 0.37.
* ``forward`` is called twice before ``backward``: backward must use the latest inputs.
* Your code must not modify the arrays it is given.
* The grader also checks one large case per item (half a million entries or more) that must finish within 10 s:
  backpropagation takes milliseconds there, a gradient computed numerically (a forward call per entry)
  takes far longer. ``grade(item, impl, large=True)`` runs it here.

How a gradient is compared
--------------------------
Here the true gradient is measured from the forward pass alone, by central differences of
``L(x) = sum(forward(x) * d_out)`` (``numerical_gradient`` below; for nll_grad and step, of the mean NLL
``nn.CategoricalCrossEntropy``). Every entry must have ``rel_error(yours, numerical) <= TOL``. The grader's
hidden checks compare every entry with the instructor's reference backward pass instead (itself checked against
finite differences along a random direction), with the same TOL: a right answer's max rel. error is about 1e-14
(or 0) there, rather than the 1e-11 to 1e-7 of numerical gradients. The floor of that relative error, the random
directions used for big arrays and the points of each sub-check are in ``gradcheck_engine.py``, which you need
not read.

Debugging your own layer
------------------------
::

    x, y, d_out = np.random.randn(3, 5), np.random.randn(3, 5), np.random.randn(3, 5)
    layer = Multiply()
    layer.forward(x, y)
    d_x, d_y = layer.backward(d_out)
    expected = gradcheck.numerical_gradient(lambda v: Multiply().forward(v, y), x, d_out)
    gradcheck.rel_error(d_x, expected).max()   # below 1e-5 when d_x is right
"""
import contextlib

import numpy as np

EPS = 1e-6   # central-difference step, relative to |x_i|
TOL = 1e-5   # max relative error; a correct answer reached 4.7e-7 in 10,000 random trials


def rel_error(a, e, floor=0.0):
    """Elementwise |a - e| / max(|a| + |e|, floor); 0 where a == e == 0.

    Args:
        a, e: arrays of one shape (a: tested, e: expected)
        floor: scalar >= 0, the smallest denominator
    Returns:
        float64 array, shape of a; values in [0, 1] when floor <= |a| + |e|
    """
    a = np.asarray(a, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    den = np.maximum(np.abs(a) + np.abs(e), floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, np.abs(a - e) / np.where(den > 0, den, 1.0), 0.0)


def numerical_gradient(f, x, d_out, eps=EPS):
    """Central-difference gradient of L(x) = sum(f(x) * d_out), one entry at a time.

    Args:
        f: function of one array shaped like x; returns an array shaped like d_out
            (or a scalar when d_out is a scalar)
        x: array, any shape (not modified: a float64 copy is perturbed)
        d_out: gradient of the final objective w.r.t. f(x); array or scalar
        eps: relative step; entry i moves by h = eps * max(1, |x_i|)
    Returns:
        grad: float64 array, shape x.shape
    """
    x = np.array(x, dtype=np.float64)
    d_out = np.asarray(d_out, dtype=np.float64)
    d_out = float(d_out) if d_out.ndim == 0 else d_out
    grad = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        old = x[idx]
        h = eps * max(1.0, abs(old))
        x[idx] = old + h
        plus, step = f(x), x[idx]
        x[idx] = old - h
        minus, step = f(x), step - x[idx]      # the step actually taken, after rounding
        x[idx] = old
        # Differences first: entries that do not depend on x_i cancel exactly.
        diff = plus - minus
        grad[idx] = (np.sum(diff * d_out) if isinstance(diff, np.ndarray) else float(diff) * d_out) / step
    return grad


def _engine():
    """The checking engine, imported on first use because it builds on the two functions above."""
    import gradcheck_engine
    return gradcheck_engine


def grade(item, impl, seeds=None, large=False):
    """Grade one item: print one line per sub-check and return the points earned.

    Args:
        item: an item name, e.g. "Multiply.backward"
        impl: your class (layers, LogisticRegression) or function (nll_grad)
        seeds: fixed seeds of the cases (default: gradcheck_engine.GRADE_SEEDS), so a re-run grades the same
        large: also check one large case (half a million entries or more), as the grader does. Backpropagation
            takes milliseconds there; a gradient computed numerically, one forward call per entry, takes minutes
            or more and fails as too slow (the grader stops waiting after 30 s)
    Returns:
        points earned, a float (the last value of the test cell: nbgrader's partial credit)
    """
    engine = _engine()
    results = engine.run_checks(item, impl, engine.GRADE_SEEDS if seeds is None else seeds, large=large)
    engine.rec.publish(results.values())   # the grader stores these records (gradcheck_records.py)
    reference = engine.reference() is not None   # only the grader has the reference backward
    print(engine.text.grade_text(item, engine.ITEMS[item].total, results.values(), reference))
    return float(sum(r.earned for r in results.values()))


def self_check(item, impl):
    """Check ``impl`` on public examples and show one line: ✓, or ✗ and the first diagnosis (plus how to see
    every sub-check). Whatever impl does, this never raises."""
    passed, _, _, text = _public_check(item, impl)
    line = _engine().text.self_check_line(item, passed, text)
    _engine().show_line(line, passed=passed, hint=None if passed else _grade_hint(item))


def check_all(namespace):
    """Self-check every item and show one table: ✓/✗, item, public points, first diagnosis; the last line is
    "Public checks: X/10 points". Whatever the answers do, this never raises.

    Args:
        namespace: the notebook's ``globals()``: each answer is looked up there by its name (Multiply, ...)
    """
    rows = []
    for item, name in _impl_names().items():
        impl = namespace.get(name) if isinstance(namespace, dict) else None
        passed, got, possible, text = _public_check(item, impl)
        if impl is None:
            text = _engine().text.say("not_defined", name=name)
        rows.append((passed, item, got, possible, text))
    _engine().show_table(rows)


def _public_check(item, impl):
    """(passed, public points earned, possible, 'matches ...' or the first diagnosis); never raises."""
    try:
        spec = _engine().ITEMS[item]
    except KeyError:
        return False, 0.0, 0.0, _engine().text.say("unknown_item", items=", ".join(_impl_names()))
    except Exception as e:   # the engine itself is missing or broken
        return False, 0.0, 0.0, f"could not be checked ({type(e).__name__})"
    try:
        results = _engine().run_checks(item, impl, cases=spec.public())
        earned = sum(r.earned for r in results.values())
        diagnosis = _engine().first_diagnosis(results)
        if diagnosis:
            return False, earned, spec.total, diagnosis
        err = max((r.max_rel_error for r in results.values() if r.max_rel_error is not None), default=0.0)
        return True, earned, spec.total, _engine().text.say("public_pass", err=_engine().text.fmt_err(err))
    except Exception as e:
        return False, 0.0, spec.total, f"could not be checked ({type(e).__name__})"


def _impl_names():
    """item -> the name the notebook defines for it ({} if the engine cannot be loaded)."""
    try:
        return {item: spec.impl_name for item, spec in _engine().ITEMS.items()}
    except Exception:
        return {}


def _grade_hint(item):
    name = _impl_names().get(item)
    return _engine().text.say("grade_hint", item=item, name=name) if name else None


# --------------------------------------------------------------------------
# Notebook demos: skipped while an answer they need is unfinished, training that watches its loss
# --------------------------------------------------------------------------

@contextlib.contextmanager
def demo():
    """``with gradcheck.demo():`` runs a demo, or -- while an answer it needs still raises
    NotImplementedError -- says so in one line and skips the rest. Any other error shows as usual."""
    try:
        yield
    except NotImplementedError as e:
        print(f"{_raised_by(e)} is not implemented yet — skipping this demo")


@contextlib.contextmanager
def training(item):
    """``with gradcheck.training("nll_grad") as losses:`` a demo whose loop appends each epoch's loss to
    ``losses``; afterwards it warns if the loss became nan/inf, went up or hardly went down."""
    losses = []
    with demo():
        yield losses
        problem = _engine().training_problem(losses)
        if problem:
            _engine().show_line(f"⚠ The training loss {problem}. With correct gradients it ends far below "
                                f"where it started: look at the {item} self-check above.", passed=False)


def _raised_by(error):
    """The name of the function that raised ``error``, e.g. 'Sum.backward'."""
    tb = error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    name = getattr(code, "co_qualname", code.co_name).rsplit("<locals>.", 1)[-1]
    return "an answer this demo needs" if name.startswith("<") else name
