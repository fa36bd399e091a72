"""Finite-difference gradient checker for exercise 9 (backpropagation).

You may read and run this file: it is the debugging tool of the exercise and the
autograder uses the very same checks (with more seeds and shapes). In the notebook::

    import gradcheck
    gradcheck.self_check("Multiply.backward", Multiply)   # prints one line

Contract
--------
The checker only calls your class or function (``impl``) and reads what comes back:

=========================  ===================================================
item                       what is called
=========================  ===================================================
Multiply.backward          ``m = Multiply(); m.forward(x, y); m.backward(d_out)``
                           -> ``(d_x, d_y)``, shaped like x and y (any shape)
Sum.backward               ``s = Sum(); s.forward(x); s.backward(d_out)``, d_out a
                           float -> ``d_x`` shaped like x
DotProduct.backward        ``p = DotProduct(); p.forward(x, y); p.backward(d_out)``,
                           x, y 1-D, d_out a float -> ``(d_x, d_y)``
nll_grad                   ``nll_grad(X, W, b, Y)`` -> ``(d_W, d_b)``, shapes (D, K), (K,)
LogisticRegression.step    ``m = LogisticRegression(D, K, lr); m.params = {'W': W0, 'b': b0};``
                           ``loss = m.step(X, Y); m.params`` -> the loss BEFORE the update
                           (a float) and params ``{'W': (D, K), 'b': (K,)}`` after it
=========================  ===================================================

* Everything passed in is float64 (arrays, Python floats, ints). Gradients must come
  back as plain ``np.ndarray`` (not a subclass, not a look-alike) with a float dtype;
  the "outputs" sub-check also wants float64 (float64 in, float64 out). A list works
  where a tuple is expected (``d_x, d_y = ...`` unpacks both).
* The true gradient is never written here: it is measured from the forward pass alone,
  by central differences of ``L(x) = sum(forward(x) * d_out)`` (for the NLL, of
  ``nn.CategoricalCrossEntropy().forward(X @ W + b, Y)``).
* Shapes have no two dimensions equal, so a transposed gradient or a sum over the
  wrong axis cannot pass; d_out is random (never all ones); nll_grad is checked at a
  random W, b and at W = 0, b = 0; step uses a random W0, b0 and learning rate 0.37.
* Your code may not modify the arrays it is given (compared with private copies).

Points per sub-check (``ITEMS[item].points``):

* Multiply.backward, DotProduct.backward: outputs .25, d_x .5, d_y .5, latest cache .5
  (forward called twice, then backward: it must use the latest inputs), inputs unchanged .25
* Sum.backward: outputs .25, d_x .5, latest cache .125, inputs unchanged .125
* nll_grad: outputs .5, d_W 1, d_b 1, inputs unchanged .5
* LogisticRegression.step: loss before update .5, W update .75, b update .5, inputs unchanged .25

A sub-check earns its points only if it passes on every case (seed x shape). Each runs on its own, so a
crash or a wrong value costs only the sub-checks that need that value. "outputs" and
"inputs unchanged" (and "latest cache") count only once some value is right or off by
a mistake the checker can name (sign, factor, swapped, ...): a stub earns nothing.
``grade(item, impl)`` prints one line per sub-check and returns the points (a float);
``self_check(item, impl)`` runs the same checks on public inputs, prints one line and
never raises.

Tolerances (and why)
--------------------
Relative error per entry: ``err = |a - e| / max(|a| + |e|, floor)`` with
``floor = max(FLOOR * max|e|, NOISE / TOL)``. Finite differences cannot resolve a
gradient below NOISE = NOISE_ULPS * eps_machine * M / EPS (M: the sum of |terms| that
make up L; |L| + 1 for the NLL, whose log-sum-exp is rounded in absolute terms), so
a true value of ~0 (``y[i] == 0``, a balanced class at W = 0) cannot turn rounding
noise into a large relative error. Central differences use ``h = EPS * max(1, |x_i|)``,
and form ``sum((f(x+h) - f(x-h)) * d_out)`` so entries not touched by x_i cancel
exactly. Tensors with more than MAX_ENTRYWISE = 256 entries are probed along
NUM_PROBES = 6 random unit directions v instead (``<g, v>`` against
``(L(x+hv) - L(x-hv)) / 2h``, ``h = EPS * max(1, ||x||)``): entry by entry would cost
2 * size forward calls.

Measured on the reference solutions (benchmarks/bench_gradcheck.py, 10,000 random
trials per item: random seed, shapes with distinct dimensions, scales 0.1-10): no
false failure; the largest err was 4.7e-7 (nll_grad and step; layers <= 2.3e-7),
so TOL = 1e-5 leaves a margin of ~20; |a - e| never exceeded 1.2 noise units
(NOISE_ULPS = 16). Without the NOISE term a correct nll_grad reaches err = 1 and a
correct step 1.2e-5. The mistakes of tests/bug_catalog.py are off by 1e-2 or more;
a float32 result (err ~3e-8) passes the value checks and fails only "outputs".
"""
import os
import sys

import numpy as np

import nn

EPS = 1e-6            # central-difference step, relative to |x_i|
TOL = 1e-5            # max relative error of a correct gradient (see docstring)
FLOOR = 1e-3          # floor of the denominator, relative to the largest true entry
NOISE_ULPS = 16       # rounding noise of one evaluation of L, in units of eps_machine * sum|L terms|
DIAG_TOL = 1e-4       # looser match used only to *name* a mistake (never to grade)
MAX_ENTRYWISE = 256   # larger tensors are checked along random directions
NUM_PROBES = 6
GRADE_SEEDS = (1, 2, 3)
PUBLIC_SEEDS = (101, 102)
STEP_LR = 0.37        # not the default 1e-2, so an ignored learning rate shows


# --------------------------------------------------------------------------
# Numerics
# --------------------------------------------------------------------------

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


def directional_derivatives(f, x, d_out, grad, num_probes=NUM_PROBES, eps=EPS, seed=0):
    """Test a gradient along random unit directions (for tensors too big per entry).

    Args:
        f, x, d_out, eps: as in numerical_gradient
        grad: gradient to test, shape x.shape
        num_probes: number of random directions v (each of norm 1)
        seed: seeds the directions, so a re-run probes the same ones
    Returns:
        analytic: <grad, v> for each v, shape (num_probes,)
        numeric: (L(x + h v) - L(x - h v)) / 2h for each v, shape (num_probes,),
            with h = eps * max(1, ||x||) so each entry moves by about eps * |x_i|
    """
    x = np.array(x, dtype=np.float64)
    grad = np.asarray(grad, dtype=np.float64)
    d_out = np.asarray(d_out, dtype=np.float64)
    rng = np.random.default_rng(seed)
    h = eps * max(1.0, float(np.linalg.norm(x)))
    analytic, numeric = np.zeros(num_probes), np.zeros(num_probes)
    for k in range(num_probes):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v)
        xp, xm = x + h * v, x - h * v
        diff = np.asarray(f(xp), dtype=np.float64) - np.asarray(f(xm), dtype=np.float64)
        # Both sides use the step actually taken (xp - xm), so rounding of x + hv cancels.
        analytic[k] = np.sum(grad * (xp - xm)) / (2 * h)
        numeric[k] = np.sum(diff * d_out) / (2 * h)
    return analytic, numeric


def _nll(X, W, b, Y):
    """Reference loss: mean NLL of softmax(X @ W + b), a float."""
    return nn.CategoricalCrossEntropy().forward(X @ W + b, Y)


def _nll_target(f, x, seed):
    """Target for a loss f(x): L = mean(log(sum exp) - logit), and log of a sum >= 1
    is rounded to ~eps_machine in absolute terms even when L ~ 0: magnitude |L| + 1."""
    return _Target(f, x, 1.0, seed, magnitude=lambda: abs(f(x)) + 1.0)


class _Target:
    """True gradient of sum(f(x) * d_out) w.r.t. x; computed on first use."""

    def __init__(self, f, x, d_out, seed, magnitude=None):
        """magnitude: sum of |terms| added up to compute L, which sets its rounding
        noise; the default |L| is too small when terms cancel (the layers pass theirs)."""
        self.f, self.x, self.d_out, self.seed = f, x, d_out, seed
        self.magnitude = magnitude or (lambda: float(np.sum(np.abs(f(x) * np.asarray(d_out)))))
        self.entrywise = x.size <= MAX_ENTRYWISE
        self._full = self._noise = None

    def floor(self, e):
        """Denominator floor for true values e: FLOOR * max|e|, or NOISE / TOL where
        NOISE = NOISE_ULPS * eps_machine * magnitude / EPS is the smallest gradient
        finite differences resolve (L is rounded, then divided by the step), so that
        a difference below NOISE never counts as an error."""
        if self._noise is None:
            self._noise = NOISE_ULPS * np.finfo(np.float64).eps * self.magnitude() / EPS
        return max(FLOOR * float(np.max(np.abs(e), initial=0.0)), self._noise / TOL, 1e-300)

    @property
    def full(self):
        """Entry-wise FD gradient, shape x.shape (None for large tensors)."""
        if self.entrywise and self._full is None:
            self._full = numerical_gradient(self.f, self.x, self.d_out)
        return self._full


# --------------------------------------------------------------------------
# Talking to impl: every call guarded, every returned value validated
# --------------------------------------------------------------------------

class _Reason(Exception):
    """A one-line diagnosis that fails the current sub-check. ``near``: the value is off
    by a mistake the checker can name (sign, factor, swapped, ...), i.e. real work."""

    def __init__(self, message, near=False):
        super().__init__(message)
        self.near = near


def _graded(status, key, check):
    """Run a value check; record in status[key] whether it was right, near or wrong."""
    status[key] = "wrong"
    try:
        result = check()
    except _Reason as r:
        status[key] = "near" if r.near else "wrong"
        raise
    status[key] = "right"
    return result


def _require_work(status):
    """Format and hygiene points count only once a value is right or nearly right,
    so that a stub returning zeros (or anything of the right shape) earns nothing."""
    if not any(v in ("right", "near") for v in status.values()):
        raise _Reason("not counted yet: no value is right or off by a named mistake")


def _describe(what, e):
    """'<what> raised ValueError: message' on one line: never a traceback."""
    if isinstance(e, NotImplementedError):
        return "not implemented yet (NotImplementedError)"
    try:   # through the grader's remote proxy the type arrives as remote_type
        name = getattr(e, "remote_type", "") or type(e).__name__
        msg = " ".join(str(e).split())
        msg = msg[len(name) + 2:] if msg.startswith(name + ": ") else msg
    except Exception:
        name, msg = type(e).__name__, ""
    return f"{what} raised {name}" + (f": {msg[:160]}" if msg else "")


def _call(what, fn):
    """Run student code; report an exception as its type and message only."""
    try:
        return fn()
    except (Exception, SystemExit) as e:   # sys.exit() in student code must not end grading
        raise _Reason(_describe(what, e)) from None


def _attempt(fn):
    """('ok', value) or ('err', reason): the run happens once, sub-checks read it."""
    try:
        return ("ok", fn())
    except _Reason as r:
        return ("err", str(r))
    except Exception as e:   # e.g. a result that cannot be copied (self-containing list)
        return ("err", f"the returned value could not be read ({type(e).__name__})")


def _tname(v):
    return "None" if v is None else type(v).__name__


def _snapshot(v):
    """Copy returned arrays at once, so no later call can change what gets graded."""
    if type(v) is np.ndarray:
        return v.copy()
    if type(v) in (tuple, list):
        return type(v)(_snapshot(u) for u in v)
    if type(v) is dict:
        return {k: _snapshot(u) for k, u in v.items()}
    return v


def _float_array(v, label):
    """Validate one returned array: a float64 copy, or raise _Reason."""
    if v is None:
        raise _Reason(f"{label} is None (missing return value?)")
    if type(v) is not np.ndarray:   # exact type: subclasses and look-alikes are refused
        sub = " (a subclass; use np.asarray)" if isinstance(v, np.ndarray) else ""
        raise _Reason(f"{label} has type {_tname(v)}{sub}, expected a numpy array (np.ndarray)")
    if v.dtype.kind != "f":
        raise _Reason(f"{label} has dtype {v.dtype}, expected float64")
    return np.array(v, dtype=np.float64)    # private copy: later changes cannot reach it


_FLOAT_SCALARS = (float, np.float64, np.float32, np.float16, np.longdouble)


def _float_scalar(v, label):
    """Validate a returned scalar (Python/numpy float or 0-d float array)."""
    if type(v) in _FLOAT_SCALARS or (type(v) is np.ndarray and v.shape == () and v.dtype.kind == "f"):
        if not np.isfinite(v):
            raise _Reason(f"{label} is {float(v)}")
        return float(v)
    if v is None:
        raise _Reason(f"{label} is None (missing return?)")
    raise _Reason(f"{label} has type {_tname(v)}, expected a float")


def _unpack(ret, labels, what):
    """Split a returned tuple/list into len(labels) raw values (or raise _Reason)."""
    if len(labels) == 1:
        if ret is None:
            raise _Reason(f"{what} returned None (missing return?)")
        return [ret]
    names = ", ".join(labels)
    if ret is None:
        raise _Reason(f"{what} returned None (missing return?); expected a tuple ({names})")
    if type(ret) not in (tuple, list):
        raise _Reason(f"{what} returned type {_tname(ret)}, expected a tuple ({names})")
    if len(ret) != len(labels):
        raise _Reason(f"{what} returned {len(ret)} values, expected {len(labels)} ({names})")
    return list(ret)


def _strict(values, labels, shapes):
    """The 'outputs' sub-check: plain float64 arrays of the right shapes, in order."""
    got = [_float_array(v, lab) for v, lab in zip(values, labels)]
    for v, a, lab, shape in zip(values, got, labels, shapes):
        if a.shape != shape:
            hint = ""
            if len(shapes) > 1 and [g.shape for g in got] == shapes[::-1]:
                hint = f": outputs in the wrong order? return ({', '.join(labels)})"
            elif a.ndim == 2 and a.shape == shape[::-1]:
                hint = " (transposed?)"
            raise _Reason(f"{lab} has shape {a.shape}, expected {shape}{hint}")
        if v.dtype != np.float64:
            raise _Reason(f"{lab} has dtype {v.dtype}, expected float64 (float64 in, float64 out)")


def _changed(pairs):
    """Label of the first array whose contents (or shape/dtype) changed, else None."""
    for label, sent, orig in pairs:
        if sent.shape != orig.shape or sent.dtype != orig.dtype or not np.array_equal(sent, orig):
            return label
    return None


# --------------------------------------------------------------------------
# Comparing one gradient and naming the mistake
# --------------------------------------------------------------------------

def _project(target, a, seed):
    """(got, expected) as vectors: all entries, or directional derivatives along the
    random directions drawn from ``seed`` (so two targets can share directions)."""
    if target.entrywise:
        return a.ravel(), target.full.ravel()
    return directional_derivatives(target.f, target.x, target.d_out, a, seed=seed)


def _close(got, e, target):
    return rel_error(got, e, target.floor(e)).max() <= DIAG_TOL


def _explains(a, alt, seed):
    """Does the alternative target ``alt`` (a named mistake) explain the value a?"""
    return a.shape == alt.x.shape and _close(*_project(alt, a, seed), alt)


def _name_factor(c, factors):
    for value, text in factors:
        if abs(c - value) <= 1e-3 * max(abs(value), 1e-3):
            return text
    return "is all zeros" if c == 0 else f"off by a constant factor {c:.3g}"


def _fmt_index(label, idx):
    return f"{label}[{', '.join(str(int(i)) for i in idx)}]"


def _compare(label, value, target, hyps=(), factors=(), shape_hint="", index_name=None):
    """Compare one returned gradient with the finite-difference target.

    Returns the max relative error if it is within TOL, else raises _Reason with a
    diagnosis: a named mistake if one of ``hyps`` (text, alternative _Target: the
    gradient that mistake would give) or a constant factor explains the value, then
    the worst entry (or worst random direction).
    """
    a = _float_array(value, label)
    shape = target.x.shape
    if a.shape != shape:
        for text, alt in hyps:
            if _explains(a, alt, alt.seed):
                raise _Reason(f"{label}: {text}", near=True)
        if a.ndim == 2 and a.T.shape == shape and _explains(a.T, target, target.seed):
            raise _Reason(f"{label} is transposed: shape {a.shape}, expected {shape}", near=True)
        raise _Reason(f"{label} has shape {a.shape}, expected {shape}{shape_hint}")
    if not np.all(np.isfinite(a)):
        raise _Reason(f"{label} contains NaN or inf")
    got, e = _project(target, a, target.seed)   # large tensors: along random directions
    err = rel_error(got, e, target.floor(e))
    if err.max() <= TOL:
        return float(err.max())
    named, c = None, None
    for text, alt in hyps:
        if _explains(a, alt, target.seed):
            named = text
            break
    if named is None and np.dot(e, e) > 0:
        c = 0.0 if np.all(got == 0) else np.dot(got, e) / np.dot(e, e)
        if c == 0.0 or _close(got, c * e, target):
            named = _name_factor(c, factors)
    k = int(np.argmax(err))
    if target.entrywise:
        where = (f"worst {_fmt_index(index_name or label, np.unravel_index(k, shape))}: got {got[k]:.4g}, "
                 f"expected {e[k]:.4g} (rel. error {err[k]:.2g})")
    else:
        where = (f"along a random direction v: <{label}, v> = {got[k]:.4g}, finite "
                 f"differences give {e[k]:.4g} (rel. error {err[k]:.2g})")
    raise _Reason(f"{label}: {named}; {where}" if named else f"{label} is wrong; {where}",
                  near=named is not None and c != 0.0)


def _guard(fn):
    """Run one sub-check: (ok, reason, max rel. error or None). Failure costs only it."""
    try:
        return True, "", fn()
    except _Reason as r:
        return False, str(r), None
    except Exception as e:   # a checker problem must not crash the grading
        return False, f"could not be checked ({type(e).__name__})", None


SIGN = [(-1.0, "sign flipped")]


def _n_factors(N):
    return SIGN + [(float(N), f"missing 1/N (off by a factor N = {N})"),
                   (1.0 / N, f"extra 1/N (off by a factor 1/N, N = {N})")]


# --------------------------------------------------------------------------
# Layers: Multiply, Sum, DotProduct
# --------------------------------------------------------------------------

class _Layer:
    """What differs between the three small layers."""

    def __init__(self, cls, forward, inputs, scalar_out, new_shape_for_first):
        self.cls, self.forward, self.inputs = cls, forward, inputs
        self.grads = tuple("d_" + n for n in inputs)
        self.scalar_out = scalar_out                      # d_out is a float
        self.new_shape_for_first = new_shape_for_first    # Sum: grads depend on shape only


def _first_shape(shape):
    return shape[::-1] if len(shape) > 1 else (shape[0] + 1,)


def _random_d_out(rng):
    """A float d_out with |d_out| away from 1, so 'ignored' and 'sign' are distinct."""
    while True:
        d = float(np.exp(rng.uniform(np.log(0.3), np.log(3.0))))
        if abs(d - 1.0) > 0.2:
            return d if rng.random() < 0.5 else -d


def _layer_case(layer, rng, shape, inputs=None, d_out=None):
    """inputs: the latest forward's arrays; first: an earlier forward's; d_out."""
    def draw(s):
        return [10 ** rng.uniform(-1, 1) * rng.standard_normal(s) for _ in layer.inputs]
    first = draw(_first_shape(shape) if layer.new_shape_for_first else shape)
    inputs = draw(shape) if inputs is None else [np.array(v, dtype=np.float64) for v in inputs]
    if d_out is None:
        d_out = (_random_d_out(rng) if layer.scalar_out
                 else 10 ** rng.uniform(-1, 1) * rng.standard_normal(shape))
    return {"inputs": inputs, "first": first, "d_out": d_out, "seed": int(rng.integers(2**31))}


def _run_layer(layer, impl, case):
    inputs, first, d_out = case["inputs"], case["first"], case["d_out"]
    n, labels = len(inputs), layer.grads
    keep = lambda d: d.copy() if isinstance(d, np.ndarray) else d   # noqa: E731
    sent1, d1 = [v.copy() for v in inputs], keep(d_out)
    sentA, sentB, d2 = [v.copy() for v in first], [v.copy() for v in inputs], keep(d_out)

    def run(forwards, d):
        obj = _call(f"{layer.cls}()", impl)
        for args in forwards:
            _call("forward", lambda: obj.forward(*args))
        return _snapshot(_call("backward", lambda: obj.backward(d)))
    r1, r2 = _attempt(lambda: run([sent1], d1)), _attempt(lambda: run([sentA, sentB], d2))

    def values(r):
        if r[0] == "err":
            raise _Reason(r[1])
        return _unpack(r[1], labels, "backward")

    def fwd_of(i, args):   # the forward pass as a function of input i alone
        return lambda v: layer.forward(*[v if j == i else args[j] for j in range(n)])
    # Rounding noise of L scales with the sum of |terms|: the forward of |inputs|.
    magnitude = lambda: float(np.sum(np.abs(layer.forward(*map(np.abs, inputs)) * d_out)))  # noqa: E731
    targets = [_Target(fwd_of(i, inputs), inputs[i], d_out, case["seed"] + i, magnitude)
               for i in range(n)]
    ones = 1.0 if layer.scalar_out else np.ones_like(d_out)

    def hyps(i, stale):   # named mistakes, as the gradient each would give
        seed = targets[i].seed
        h = [("stale cache: matches the inputs of the FIRST forward call; backward must use the latest",
              _Target(fwd_of(i, first), first[i], d_out, seed, magnitude))] if stale else []
        h += [(f"outputs swapped ({labels[i]} is the gradient w.r.t. {layer.inputs[j]})", targets[j])
              for j in range(n) if j != i]
        return h + [("d_out ignored (matches the gradient for d_out = 1)",
                     _Target(targets[i].f, inputs[i], ones, seed, magnitude))]

    status = {}

    def latest_check():
        right = [i for i in range(n) if status[i] == "right"]
        if not right:
            raise _Reason("not checked yet: no gradient is right after a single forward call")
        vals = values(r2)   # gradients right after one forward must stay right after two
        return max(_compare(labels[i], vals[i], targets[i], hyps(i, True), SIGN) for i in right)

    def inputs_check():
        for r in (r1, r2):   # a stub that returns nothing usable earns nothing here
            for v, lab in zip(values(r), labels):
                _float_array(v, lab)
        pairs = [(name, s, o) for sent, orig in ((sent1, inputs), (sentA, first), (sentB, inputs))
                 for name, s, o in zip(layer.inputs, sent, orig)]
        if not layer.scalar_out:   # a float d_out cannot be modified
            pairs += [("d_out", d1, d_out), ("d_out", d2, d_out)]
        bad = _changed(pairs)
        if bad:
            raise _Reason(f"modified its input {bad} in place (work on a copy, or build new arrays)")
        _require_work(status)

    def outputs_check():
        _strict(values(r1), labels, [v.shape for v in inputs])
        _require_work(status)

    res = {labels[i]: _guard(lambda i=i: _graded(status, i, lambda: _compare(
        labels[i], values(r1)[i], targets[i], hyps(i, False), SIGN))) for i in range(n)}
    res["outputs"] = _guard(outputs_check)
    res["latest cache"] = _guard(latest_check)
    res["inputs unchanged"] = _guard(inputs_check)
    return res


def _distinct_shape(rng, low=2, high=12):
    ndim = int(rng.integers(1, 4))
    return tuple(int(d) for d in rng.choice(np.arange(low, high + 1), ndim, replace=False))


# --------------------------------------------------------------------------
# nll_grad
# --------------------------------------------------------------------------

def _nll_case(rng, N, D, K):
    """Random X, one-hot Y; W, b with logits of scale 0.3-3; and the W = 0 point."""
    sx, sl = 10 ** rng.uniform(-1, 1), 10 ** rng.uniform(-0.5, 0.5)
    X = sx * rng.standard_normal((N, D))
    Y = np.eye(K)[rng.integers(0, K, N)]
    W = rng.standard_normal((D, K)) * sl / (sx * np.sqrt(D))
    b = sl * rng.standard_normal(K)
    points = [("random", W, b), ("W = 0", np.zeros((D, K)), np.zeros(K))]
    return {"X": X, "Y": Y, "points": points, "seed": int(rng.integers(2**31))}


def _run_nll(impl, case):
    X, Y, seed = case["X"], case["Y"], case["seed"]
    N, K = Y.shape
    labels, names = ("d_W", "d_b"), ("X", "W", "b", "Y")
    runs = []
    for tag, W, b in case["points"]:
        sent = [X.copy(), W.copy(), b.copy(), Y.copy()]
        r = _attempt(lambda s=sent: _snapshot(_call("nll_grad", lambda: impl(*s))))
        tW = _nll_target(lambda W_, b=b: _nll(X, W_, b, Y), W, seed)
        tb = _nll_target(lambda b_, W=W: _nll(X, W, b_, Y), b, seed + 1)
        runs.append((tag, [X, W, b, Y], sent, r, (tW, tb)))

    def values(r):
        if r[0] == "err":
            raise _Reason(r[1])
        return _unpack(r[1], labels, "nll_grad")

    status = {}

    def outputs_check():
        for tag, args, sent, r, _ in runs:
            _strict(values(r), labels, [args[1].shape, args[2].shape])
        _require_work(status)

    def grad_check(i):
        hint = " (summed over the wrong axis? d_b has one entry per class)" if i == 1 else ""
        errs, fails = [], {}
        for tag, args, sent, r, tg in runs:
            other = tg[1 - i]
            hyps = [("outputs swapped: return (d_W, d_b)", other)]
            try:
                errs.append(_compare(labels[i], values(r)[i], tg[i], hyps, _n_factors(N), hint))
            except _Reason as reason:
                fails[tag] = reason
        if "random" in fails and "W = 0" not in fails:
            raise _Reason(f"right only at W = 0; at random W, b: {fails['random']}", near=True)
        if fails:
            raise _Reason(str(next(iter(fails.values()))), near=all(f.near for f in fails.values()))
        return max(errs)

    def inputs_check():
        for tag, args, sent, r, _ in runs:
            for v, lab in zip(values(r), labels):
                _float_array(v, lab)
        bad = _changed([(nm, s, o) for _, args, sent, _, _ in runs for nm, s, o in zip(names, sent, args)])
        if bad:
            raise _Reason(f"modified its input {bad} in place (work on a copy, or build new arrays)")
        _require_work(status)

    res = {"d_W": _guard(lambda: _graded(status, 0, lambda: grad_check(0))),
           "d_b": _guard(lambda: _graded(status, 1, lambda: grad_check(1)))}
    return {"outputs": _guard(outputs_check), **res, "inputs unchanged": _guard(inputs_check)}


def _nll_dims(rng):
    while True:   # no two dimensions equal, so a transposed result cannot pass
        N, D, K = int(rng.integers(2, 41)), int(rng.integers(1, 10)), int(rng.integers(2, 10))
        if len({N, D, K}) == 3:
            return N, D, K


# --------------------------------------------------------------------------
# LogisticRegression.step
# --------------------------------------------------------------------------

def _run_step(impl, case):
    X, Y, lr, seed = case["X"], case["Y"], case["lr"], case["seed"]
    W0, b0 = case["points"][0][1], case["points"][0][2]
    (N, D), K = X.shape, Y.shape[1]
    Xs, Ys = X.copy(), Y.copy()

    def run():
        model = _call(f"LogisticRegression({D}, {K}, {lr})", lambda: impl(D, K, lr))
        _call("setting model.params", lambda: setattr(model, "params", {"W": W0.copy(), "b": b0.copy()}))
        loss = _call("step", lambda: model.step(Xs, Ys))
        return _snapshot((loss, _call("reading model.params", lambda: model.params)))
    r = _attempt(run)
    targets = {"W": _nll_target(lambda W_: _nll(X, W_, b0, Y), W0, seed),
               "b": _nll_target(lambda b_: _nll(X, W0, b_, Y), b0, seed + 1)}
    before = {"W": W0, "b": b0}

    def after(p):
        if r[0] == "err":
            raise _Reason(r[1])
        params = r[1][1]
        if type(params) is not dict:
            raise _Reason(f"model.params has type {_tname(params)} after step, expected a dict")
        if p not in params:
            raise _Reason(f"model.params has no '{p}' after step")
        a = _float_array(params[p], f"params['{p}']")
        if a.shape != before[p].shape:
            raise _Reason(f"params['{p}'] has shape {a.shape} after step, expected {before[p].shape}")
        return a

    def param_check(p):
        step_factors = [(0.0, f"{p} was not updated"),
                        (-1.0, "update sign flipped: use params[p] - learning_rate * grads[p]"),
                        (1.0 / lr, "learning rate ignored (stepped by the whole gradient)"),
                        (1e-2 / lr, "learning rate ignored: used 1e-2, not the learning_rate given")]
        # The update implies a gradient (before - after) / lr; it must be the FD gradient.
        implied = (before[p] - after(p)) / lr
        return _compare(f"{p} update", implied, targets[p], (), step_factors + _n_factors(N)[1:],
                        index_name=f"(old {p} - new {p}) / lr")

    def loss_check():
        if r[0] == "err":
            raise _Reason(r[1])
        got = _float_scalar(r[1][0], "the loss returned by step")
        want = _nll(X, W0, b0, Y)
        if abs(got - want) <= TOL * max(abs(got) + abs(want), 1e-12):
            return abs(got - want) / max(abs(got) + abs(want), 1e-12)
        try:
            new = _nll(X, after("W"), after("b"), Y)
        except _Reason:
            new = np.nan
        if abs(got - new) <= DIAG_TOL * abs(new):
            raise _Reason(f"loss returned after the update instead of before ({got:.6g}; "
                          f"before it was {want:.6g})", near=True)
        named = [text for value, text in _n_factors(N)[1:] if want and abs(got / want - value) <= 1e-3 * value]
        raise _Reason(f"returned loss {got:.6g}, expected {want:.6g} (the loss before the update)"
                      + (f": {named[0]}" if named else ""), near=bool(named))

    status = {}

    def inputs_check():
        after("W"), after("b")   # step must have run and left usable params
        bad = _changed([("X", Xs, X), ("Y", Ys, Y)])
        if bad:
            raise _Reason(f"modified its input {bad} in place")
        _require_work(status)

    return {"loss before update": _guard(lambda: _graded(status, "loss", loss_check)),
            "W update": _guard(lambda: _graded(status, "W", lambda: param_check("W"))),
            "b update": _guard(lambda: _graded(status, "b", lambda: param_check("b"))),
            "inputs unchanged": _guard(inputs_check)}


def _step_case(rng, N, D, K):
    case = _nll_case(rng, N, D, K)
    case["lr"] = STEP_LR
    return case


# --------------------------------------------------------------------------
# The table of graded items
# --------------------------------------------------------------------------

class _Item:
    """points: sub-check -> points; run(impl, case) -> sub-check -> (ok, reason, err);
    cases(seeds): graded cases; public(): self_check cases; random(rng): one random case."""

    def __init__(self, points, run, cases, public, random):
        self.points, self.run, self.cases, self.public, self.random = points, run, cases, public, random


def _seeded(seeds, makers):
    """One case per (seed, maker); each gets its own stream so adding one changes no other."""
    return [make(np.random.default_rng([seed, k])) for seed in seeds for k, make in enumerate(makers)]


def _layer_item(layer, points, shapes, example, example_d_out, random_shape):
    make = lambda shape: (lambda rng: _layer_case(layer, rng, shape))   # noqa: E731
    return _Item(
        points, lambda impl, case: _run_layer(layer, impl, case),
        cases=lambda seeds: _seeded(seeds, [make(s) for s in shapes]),
        public=lambda: ([_layer_case(layer, np.random.default_rng(PUBLIC_SEEDS[0]), example[0].shape,
                                     example, example_d_out)]
                        + _seeded(PUBLIC_SEEDS, [make(shapes[0])])),
        random=lambda rng: _layer_case(layer, rng, random_shape(rng)))


_X_EX, _Y_EX = np.arange(1, 5.), np.arange(-1, 3.)   # the notebook's example vectors
_LAYER_POINTS = {"outputs": 0.25, "d_x": 0.5, "d_y": 0.5, "latest cache": 0.5, "inputs unchanged": 0.25}

ITEMS = {
    "Multiply.backward": _layer_item(
        _Layer("Multiply", lambda x, y: x * y, ("x", "y"), False, False), dict(_LAYER_POINTS),
        shapes=[(3, 5), (6,), (2, 3, 4), (30, 70)], example=(_X_EX, _Y_EX),
        example_d_out=np.ones(4), random_shape=_distinct_shape),
    "Sum.backward": _layer_item(
        _Layer("Sum", np.sum, ("x",), True, True),
        {"outputs": 0.25, "d_x": 0.5, "latest cache": 0.125, "inputs unchanged": 0.125},
        shapes=[(3, 5), (6,), (2, 3, 4), (30, 70)], example=(_X_EX,),
        example_d_out=1.0, random_shape=_distinct_shape),
    "DotProduct.backward": _layer_item(
        _Layer("DotProduct", np.dot, ("x", "y"), True, False), dict(_LAYER_POINTS),
        shapes=[(6,), (11,), (700,)], example=(_X_EX, _Y_EX), example_d_out=1.0,
        random_shape=lambda rng: (int(np.exp(rng.uniform(np.log(2), np.log(1000)))),)),
    "nll_grad": _Item(
        {"outputs": 0.5, "d_W": 1.0, "d_b": 1.0, "inputs unchanged": 0.5}, _run_nll,
        cases=lambda seeds: _seeded(seeds, [lambda rng, s=s: _nll_case(rng, *s)
                                            for s in [(7, 5, 3), (11, 4, 6), (30, 8, 10)]]),
        public=lambda: _seeded(PUBLIC_SEEDS, [lambda rng: _nll_case(rng, 7, 5, 3)]),
        random=lambda rng: _nll_case(rng, *_nll_dims(rng))),
    "LogisticRegression.step": _Item(
        {"loss before update": 0.5, "W update": 0.75, "b update": 0.5, "inputs unchanged": 0.25},
        _run_step,
        cases=lambda seeds: _seeded(seeds, [lambda rng, s=s: _step_case(rng, *s)
                                            for s in [(7, 5, 3), (11, 4, 6)]]),
        public=lambda: _seeded(PUBLIC_SEEDS, [lambda rng: _step_case(rng, 7, 5, 3)]),
        random=lambda rng: _step_case(rng, *_nll_dims(rng))),
}


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------

def run_checks(item, impl, seeds=GRADE_SEEDS, cases=None):
    """Run every sub-check of ``item`` on every case.

    Args:
        item: a key of ITEMS
        impl: the student's class or function
        seeds: which graded cases to build (ignored when ``cases`` is given)
        cases: explicit cases, e.g. ``[ITEMS[item].random(rng)]``
    Returns:
        dict sub-check -> (earned, possible, reason, max rel. error or None);
        a sub-check earns its points only if it passes on every case, and
        ``reason`` is the diagnosis from the first case where it failed.
    """
    spec = ITEMS[item]
    cases = spec.cases(seeds) if cases is None else cases
    if not cases:   # nothing checked must not mean full points
        raise ValueError("no cases to check: give at least one seed")
    state = {name: [True, "", None] for name in spec.points}
    for case in cases:
        for name, (ok, reason, err) in spec.run(impl, case).items():
            s = state[name]
            if not ok and s[0]:
                s[0], s[1] = False, reason
            if err is not None:
                s[2] = err if s[2] is None else max(s[2], err)
    return {name: (spec.points[name] if s[0] else 0.0, spec.points[name], s[1], s[2])
            for name, s in state.items()}


def _fmt_err(err):
    return "0" if err == 0 else f"{err:.0e}"


def grade(item, impl, seeds=GRADE_SEEDS):
    """Grade one item: print one line per sub-check and return the points earned.

    Args:
        item: a key of ITEMS, e.g. "Multiply.backward"
        impl: the student's class (layers, LogisticRegression) or function (nll_grad)
        seeds: fixed seeds, so a re-run gives the same grade
    Returns:
        points earned, a Python float (the last value of the test cell)
    """
    results = run_checks(item, impl, seeds)
    earned = float(sum(r[0] for r in results.values()))
    print(f"{item}: {earned:g} / {sum(ITEMS[item].points.values()):g} points")
    for name, (got, pts, reason, err) in results.items():
        detail = reason if got < pts else ("" if err is None else f"max rel. error {_fmt_err(err)}")
        print(f"  {'✓' if got == pts else '✗'} {name:<18} {got:.3g}/{pts:.3g}  {detail}".rstrip())
    return earned


def _report_failure(line):
    """A failed self-check goes to stderr: Jupyter shows it in red and `nbgrader validate` lists the cell as
    failing. While autograding it goes to stdout, because there the points come from grade(), and nbgrader
    would give zero to a test cell that wrote to stderr."""
    autograding = os.environ.get("NBGRADER_EXECUTION") == "autograde"
    print(line, file=sys.stdout if autograding else sys.stderr)


def self_check(item, impl):
    """Check ``impl`` on public inputs and print exactly one line; never raises."""
    try:
        if item not in ITEMS:
            _report_failure(f"✗ {item}: unknown item (one of {', '.join(ITEMS)})")
            return
        results = run_checks(item, impl, cases=ITEMS[item].public())
        failed = [r[2] for r in results.values() if r[0] < r[1]]
        if failed:   # the first real diagnosis, not a "not counted/checked yet"
            _report_failure(f"✗ {item}: {next((f for f in failed if not f.startswith('not c')), failed[0])}")
        else:
            err = max((r[3] for r in results.values() if r[3] is not None), default=0.0)
            print(f"✓ {item} matches numerical gradients, max rel. error {_fmt_err(err)}")
    except Exception as e:
        _report_failure(f"✗ {item}: could not be checked ({type(e).__name__})")
