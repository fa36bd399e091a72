"""The checking engine behind gradcheck.py: cases, sub-checks, named mistakes, points.

Students need not read this file; ``gradcheck.py`` says what is called, what must come back and how a
gradient is compared. Instructors change the graded items here, in ``ITEMS``.

Declaring an item (the item registry)
-------------------------------------
``ITEMS`` maps an item name (the first argument of ``gradcheck.grade``/``self_check``) to an :class:`Item`.
Each item's ``points`` (sub-check -> points) is the only place the point split is written down; the notebook's
test cell has their sum as its nbgrader ``points`` (a test checks it), and the points table of docs/grading.md is
checked against it. A layer with ``forward(*inputs)`` and ``backward(d_out)`` is declared in one call::

    ITEMS["ReLU.backward"] = layer_item(
        "ReLU", lambda x: np.maximum(x, 0), inputs=("x",),
        points={"outputs": 0.25, "d_x": 0.5, "latest cache": 0.125, "inputs unchanged": 0.125},
        shapes=[(3, 5), (6,), (2, 3, 4)], example=(np.array([-1.5, -0.5, 0.5, 1.5]),), example_d_out=np.ones(4))

The reference forward pass is all the checker knows of a layer: the true gradient is measured from it by
finite differences, never written down. ``nll_grad`` and ``LogisticRegression.step`` have their own runners
(``_run_nll``, ``_run_step``).

Cases
-----
A graded case is one seed x one shape of the item (``cases(seeds)``). ``gradcheck.grade(..., large=True)`` (the
grader's hidden tests) adds the item's **large case** last: half a million entries per input or more
(``large_shape``, ``_LARGE_NLL``), where a backward pass takes milliseconds but differentiating numerically --
one or two forward calls per entry -- takes minutes to hours. Its calls must finish within LARGE_SECONDS, or
every sub-check fails on it with the diagnosis "too slow on the large case"; LARGE_PROBES random directions
keep checking it cheap. It calls ``forward`` once (the small cases check the cache).

While the grader sets ``SEED_SALT`` on its trusted copy (a course secret mixed with a hash of the submission),
every graded case's random stream starts from the salt too: the same submission gets the same cases on a
re-run, a changed one other cases. Public cases (``self_check``) are never salted.

Sub-checks (each earns its points only if it passes on every case, seed x shape):

* ``d_<input>`` (``d_W``, ``W update``, ...): the gradient matches finite differences within TOL.
* ``outputs``: plain float64 ``np.ndarray`` results of the right number, order and shapes.
* ``latest cache``: ``forward`` called twice, then ``backward``: it must use the latest inputs.
* ``inputs unchanged``: every array passed in is unchanged afterwards (compared with private copies).
* ``loss before update`` (step): the returned loss is the loss before the update.

``outputs``, ``latest cache``, ``inputs unchanged`` and ``loss before update`` (which the given code computes)
count only once some gradient is right or off by a mistake the checker can name (sign, factor, swapped, ...),
so a stub -- returning zeros, or with only its ``raise`` removed -- earns nothing.

Tolerances (and why)
--------------------
Relative error per entry: ``err = |a - e| / max(|a| + |e|, floor)`` with
``floor = max(FLOOR * max|e|, NOISE / TOL)``. Finite differences cannot resolve a gradient below
NOISE = NOISE_ULPS * eps_machine * M / EPS (M: the sum of |terms| that make up L; |L| + 1 for the NLL, whose
log-sum-exp is rounded in absolute terms), so a true value of ~0 (``y[i] == 0``, a balanced class at W = 0)
cannot turn rounding noise into a large relative error. Tensors with more than MAX_ENTRYWISE = 256 entries are
probed along NUM_PROBES = 6 random unit directions v instead (``<g, v>`` against
``(L(x+hv) - L(x-hv)) / 2h``, ``h = EPS * max(1, ||x||)``): entry by entry would cost 2 * size forward calls.

Measured on the reference solutions (benchmarks/bench_gradcheck.py, 10,000 random trials per item: random
seed, shapes with distinct dimensions, scales 0.1-10): no false failure; the largest err was 4.7e-7 (nll_grad
and step; layers <= 2.3e-7), so TOL = 1e-5 leaves a margin of ~20; |a - e| never exceeded 1.2 noise units
(NOISE_ULPS = 16). Without the NOISE term a correct nll_grad reaches err = 1 and a correct step 1.2e-5. The
mistakes of grading/fixtures/bug_catalog.py are off by 1e-2 or more; a float32 result (err ~3e-8) passes the
value checks and fails only "outputs".
"""
import contextlib
import html
import os
import sys
import time
from collections import namedtuple

import numpy as np

import nn
from gradcheck import EPS, TOL, numerical_gradient, rel_error

FLOOR = 1e-3          # floor of the denominator, relative to the largest true entry
NOISE_ULPS = 16       # rounding noise of one evaluation of L, in units of eps_machine * sum|L terms|
DIAG_TOL = 1e-4       # looser match used only to *name* a mistake (never to grade)
MAX_ENTRYWISE = 256   # larger tensors are checked along random directions
NUM_PROBES = 6
GRADE_SEEDS = (1, 2, 3)
PUBLIC_SEEDS = (101, 102)
STEP_LR = 0.37        # not the default 1e-2, so an ignored learning rate shows
LARGE_SECONDS = 10.0  # a large case's calls must finish within this; a correct answer takes < 0.1 s there
LARGE_PROBES = 2      # random directions per gradient of a large case (each costs two reference forward passes)
LARGE_STREAM = 999    # the large case's random stream: [seed, LARGE_STREAM] (small cases use [seed, shape index])
SEED_SALT = None      # set by the grader on its trusted copy (an int): mixed into every graded case's stream

# What run_checks reports per sub-check: points earned and possible, the first diagnosis, the max rel. error.
Result = namedtuple("Result", "earned possible reason error")
# What an observer sees of one graded comparison (see observe()).
Comparison = namedtuple("Comparison", "label got expected floor noise")
_observers = []


@contextlib.contextmanager
def observe(callback):
    """While the block runs, call ``callback(Comparison)`` after every gradient compared with TOL.

    Comparison fields: label (e.g. "d_x"); got, expected: the compared float64 vectors (entries, or directional
    derivatives); floor: the denominator floor used; noise: the smallest gradient finite differences resolve
    for this target. benchmarks/bench_gradcheck.py records its error statistics this way.
    """
    _observers.append(callback)
    try:
        yield
    finally:
        _observers.remove(callback)


# --------------------------------------------------------------------------
# The true gradient of one input, measured on first use
# --------------------------------------------------------------------------

def directional_derivatives(f, x, d_out, grad, num_probes=NUM_PROBES, eps=EPS, seed=0):
    """Test a gradient along random unit directions (for tensors too big per entry).

    Args:
        f, x, d_out, eps: as in gradcheck.numerical_gradient
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


def _nll_target(f, x, seed, probes=None):
    """Target for a loss f(x): L = mean(log(sum exp) - logit), and log of a sum >= 1
    is rounded to ~eps_machine in absolute terms even when L ~ 0: magnitude |L| + 1."""
    return _Target(f, x, 1.0, seed, magnitude=lambda: abs(f(x)) + 1.0, probes=probes)


class _Target:
    """True gradient of sum(f(x) * d_out) w.r.t. x; computed on first use."""

    def __init__(self, f, x, d_out, seed, magnitude=None, probes=None):
        """magnitude: sum of |terms| added up to compute L, which sets its rounding
        noise; the default |L| is too small when terms cancel (the layers pass theirs).
        probes: always check along this many random directions (the large cases), else
        entry by entry up to MAX_ENTRYWISE entries and along NUM_PROBES directions above."""
        self.f, self.x, self.d_out, self.seed = f, x, d_out, seed
        self.magnitude = magnitude or (lambda: float(np.sum(np.abs(f(x) * np.asarray(d_out)))))
        self.entrywise = probes is None and x.size <= MAX_ENTRYWISE
        self.probes = probes or NUM_PROBES
        self._full = self._noise = None

    @property
    def noise(self):
        """NOISE = NOISE_ULPS * eps_machine * magnitude / EPS: the smallest gradient finite differences
        resolve (L is rounded, then divided by the step)."""
        if self._noise is None:
            self._noise = NOISE_ULPS * np.finfo(np.float64).eps * self.magnitude() / EPS
        return self._noise

    def floor(self, e):
        """Denominator floor for true values e: FLOOR * max|e|, or NOISE / TOL, so that a difference below
        NOISE never counts as an error."""
        return max(FLOOR * float(np.max(np.abs(e), initial=0.0)), self.noise / TOL, 1e-300)

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


def _require_work(status, what="no value is right or off by a named mistake"):
    """Format, hygiene and given-code points count only once a value is right or nearly right,
    so that a stub returning zeros (or anything of the right shape) earns nothing."""
    if not any(v in ("right", "near") for v in status.values()):
        raise _Reason(f"not counted yet: {what}")


def _describe(what, e):
    """'<what> raised ValueError: message' on one line: never a traceback."""
    if isinstance(e, NotImplementedError):
        return "not implemented yet (NotImplementedError)"
    try:   # through the grader's remote proxy the type arrives as remote_type
        # One line, always: a type name is student text too (a line break in it would forge report lines).
        name = " ".join(str(getattr(e, "remote_type", "") or type(e).__name__).split())[:80]
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


TOO_SLOW = "too slow on the large case"


def _timed(case, fn):
    """_attempt(fn); on the large case, a run over LARGE_SECONDS fails as too slow, whatever it returned
    (the grader's call timeout may stop it first: the reason then says so too)."""
    start = time.monotonic()
    r = _attempt(fn)
    seconds = time.monotonic() - start
    if "large" not in case or seconds <= LARGE_SECONDS:
        return r
    return ("err", f"{TOO_SLOW} ({case['large']}): {seconds:.0f} s, limit {LARGE_SECONDS:g} s; "
                   "backpropagation takes milliseconds there, one forward call per entry cannot finish"
            + (f" ({r[1]})" if r[0] == "err" else ""))


def _probes(case):
    """Directions a large case's gradients are checked along (None: the usual rule, see _Target)."""
    return LARGE_PROBES if "large" in case else None


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


def _scalar_kind(v):
    """'a float', 'an int', 'a numpy float64', 'a 0-d array', or None when v is no scalar."""
    if type(v) is float:
        return "a float"
    if type(v) in (int, bool):
        return f"an {type(v).__name__}" if type(v) is int else "a bool"
    if isinstance(v, np.generic):
        return f"a numpy {type(v).__name__}"
    if type(v) is np.ndarray and v.ndim == 0:
        return "a 0-d array"
    return None


def _float_array(v, label, shape=None, like=None):
    """Validate one returned array: a float64 copy, or raise _Reason. With ``shape`` (the expected shape),
    a scalar gets "must be an array shaped like <like> <shape>"; ``like`` defaults to label without "d_"."""
    if v is None:
        raise _Reason(f"{label} is None (missing return value?)")
    kind = _scalar_kind(v) if shape is not None and shape != () else None
    if kind:   # a gradient that became a number: usually a sum too many
        hint = " — did you sum?" if label.startswith("d_") else ""
        raise _Reason(f"{label} must be an array shaped like {like or label[2:]} {shape}; got {kind}{hint}")
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
    got = [_float_array(v, lab, shape) for v, lab, shape in zip(values, labels, shapes)]
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
    return directional_derivatives(target.f, target.x, target.d_out, a, target.probes, seed=seed)


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


def _entry(label):
    """Default wording of the worst entry: 'd_W[3, 0]: got 2.793, expected 0.3989'."""
    return lambda idx, got, e: f"{_fmt_index(label, idx)}: got {got:.4g}, expected {e:.4g}"


def _wrong_shape(label, a, target, hyps, shape_hint):
    """Raise the diagnosis of a gradient whose shape is not its input's."""
    shape = target.x.shape
    for text, alt in hyps:
        if _explains(a, alt, alt.seed):
            raise _Reason(f"{label}: {text}", near=True)
    if a.ndim == 2 and a.T.shape == shape and _explains(a.T, target, target.seed):
        raise _Reason(f"{label} is transposed: shape {a.shape}, expected {shape}", near=True)
    raise _Reason(f"{label} has shape {a.shape}, expected {shape}{shape_hint}")


def _compare(label, value, target, hyps=(), factors=(), shape_hint="", entry=None):
    """Compare one returned gradient with the finite-difference target.

    Returns the max relative error if it is within TOL, else raises _Reason with a
    diagnosis: a named mistake if one of ``hyps`` (text, alternative _Target: the
    gradient that mistake would give) or a constant factor explains the value, then
    the worst entry (``entry(index, got, expected)`` words it) or worst random direction.
    """
    a = _float_array(value, label, target.x.shape)
    if a.shape != target.x.shape:
        _wrong_shape(label, a, target, hyps, shape_hint)
    if not np.all(np.isfinite(a)):
        raise _Reason(f"{label} contains NaN or inf")
    got, e = _project(target, a, target.seed)   # large tensors: along random directions
    floor = target.floor(e)
    for callback in _observers:
        callback(Comparison(label, got, e, floor, target.noise))
    err = rel_error(got, e, floor)
    if err.max() <= TOL:
        return float(err.max())
    named, c = next((text for text, alt in hyps if _explains(a, alt, target.seed)), None), None
    if named is None and np.dot(e, e) > 0:
        c = 0.0 if np.all(got == 0) else np.dot(got, e) / np.dot(e, e)
        if c == 0.0 or _close(got, c * e, target):
            named = _name_factor(c, factors)
    k = int(np.argmax(err))
    if target.entrywise:
        where = f"worst {(entry or _entry(label))(np.unravel_index(k, a.shape), got[k], e[k])}"
    else:
        where = (f"along a random direction v: <{label}, v> = {got[k]:.4g}, finite "
                 f"differences give {e[k]:.4g}")
    where += f" (rel. error {err[k]:.2g})"
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
# Layers: forward(*inputs), backward(d_out)
# --------------------------------------------------------------------------

class _Layer:
    """What differs between layers: see layer_item()."""

    def __init__(self, cls, forward, inputs, scalar_out, first_call_new_shape):
        self.cls, self.forward, self.inputs = cls, forward, inputs
        self.grads = tuple("d_" + n for n in inputs)
        self.scalar_out = scalar_out                      # d_out is a float
        self.first_call_new_shape = first_call_new_shape  # Sum: grads depend on shape only


def _first_shape(shape):
    return shape[::-1] if len(shape) > 1 else (shape[0] + 1,)


def _random_d_out(rng):
    """A float d_out with |d_out| away from 1, so 'ignored' and 'sign' are distinct."""
    while True:
        d = float(np.exp(rng.uniform(np.log(0.3), np.log(3.0))))
        if abs(d - 1.0) > 0.2:
            return d if rng.random() < 0.5 else -d


def _layer_case(layer, rng, shape, inputs=None, d_out=None, large=False):
    """inputs: the latest forward's arrays; first: an earlier forward's (None in the large case); d_out."""
    def draw(s):
        return [10 ** rng.uniform(-1, 1) * rng.standard_normal(s) for _ in layer.inputs]
    first = None if large else draw(_first_shape(shape) if layer.first_call_new_shape else shape)
    inputs = draw(shape) if inputs is None else [np.array(v, dtype=np.float64) for v in inputs]
    if d_out is None:
        d_out = (_random_d_out(rng) if layer.scalar_out
                 else 10 ** rng.uniform(-1, 1) * rng.standard_normal(shape))
    case = {"inputs": inputs, "first": first, "d_out": d_out, "seed": int(rng.integers(2**31))}
    if large:
        case["large"] = f"{', '.join(layer.inputs)} of shape {shape}"
    return case


def _layer_targets(layer, inputs, first, d_out, seed, probes=None):
    """The true gradients, and hyps(i, stale): the named mistakes of input i as the gradient each would give."""
    n, labels = len(inputs), layer.grads

    def fwd_of(i, args):   # the forward pass as a function of input i alone
        return lambda v: layer.forward(*[v if j == i else args[j] for j in range(n)])
    # Rounding noise of L scales with the sum of |terms|: the forward of |inputs|.
    magnitude = lambda: float(np.sum(np.abs(layer.forward(*map(np.abs, inputs)) * d_out)))  # noqa: E731
    targets = [_Target(fwd_of(i, inputs), inputs[i], d_out, seed + i, magnitude, probes) for i in range(n)]
    ones = 1.0 if layer.scalar_out else np.ones_like(d_out)

    def hyps(i, stale):
        s = targets[i].seed
        h = [("stale cache: matches the inputs of the FIRST forward call; backward must use the latest",
              _Target(fwd_of(i, first), first[i], d_out, s, magnitude, probes))] if stale else []
        h += [(f"outputs swapped ({labels[i]} is the gradient w.r.t. {layer.inputs[j]})", targets[j])
              for j in range(n) if j != i]
        return h + [("d_out ignored (matches the gradient for d_out = 1)",
                     _Target(targets[i].f, inputs[i], ones, s, magnitude, probes))]
    return targets, hyps


def _run_layer(layer, impl, case):
    inputs, first, d_out = case["inputs"], case["first"], case["d_out"]
    n, labels = len(inputs), layer.grads
    keep = lambda d: d.copy() if isinstance(d, np.ndarray) else d   # noqa: E731
    sent1, d1 = [v.copy() for v in inputs], keep(d_out)
    # (sent copies, the arrays they copy): what must be unchanged afterwards
    sent = [(sent1, inputs)] + ([] if first is None else [([v.copy() for v in first], first),
                                                          ([v.copy() for v in inputs], inputs)])
    sent_d = [d1] + ([] if first is None else [keep(d_out)])

    def run(forwards, d):
        obj = _call(f"{layer.cls}()", impl)
        for args in forwards:
            _call("forward", lambda: obj.forward(*args))
        return _snapshot(_call("backward", lambda: obj.backward(d)))
    r1 = _timed(case, lambda: run([sent1], d1))
    # forward twice, then backward (the large case skips this: it times one backward)
    r2 = None if first is None else _attempt(lambda: run([sent[1][0], sent[2][0]], sent_d[1]))

    def values(r):
        if r[0] == "err":
            raise _Reason(r[1])
        return _unpack(r[1], labels, "backward")
    targets, hyps = _layer_targets(layer, inputs, first, d_out, case["seed"], _probes(case))
    status = {}

    def latest_check():
        right = [i for i in range(n) if status[i] == "right"]
        if not right:
            raise _Reason("not checked yet: no gradient is right after a single forward call")
        if r2 is None:
            return None
        vals = values(r2)   # gradients right after one forward must stay right after two
        return max(_compare(labels[i], vals[i], targets[i], hyps(i, True), SIGN) for i in right)

    def inputs_check():
        for r in (r1, r2) if r2 else (r1,):   # a stub that returns nothing usable earns nothing here
            for v, lab, inp in zip(values(r), labels, inputs):
                _float_array(v, lab, inp.shape)
        pairs = [(name, s, o) for copies, orig in sent for name, s, o in zip(layer.inputs, copies, orig)]
        if not layer.scalar_out:   # a float d_out cannot be modified
            pairs += [("d_out", d, d_out) for d in sent_d]
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


def distinct_shape(rng, low=2, high=12):
    """A random shape of 1-3 dimensions, no two equal (a transposed or mis-reduced gradient cannot pass)."""
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
        if runs and runs[-1][3][0] == "err" and runs[-1][3][1].startswith(TOO_SLOW):
            r = runs[-1][3]   # once too slow, the large case waits for no further call
        else:
            r = _timed(case, lambda s=sent: _snapshot(_call("nll_grad", lambda: impl(*s))))
        tW = _nll_target(lambda W_, b=b: _nll(X, W_, b, Y), W, seed, _probes(case))
        tb = _nll_target(lambda b_, W=W: _nll(X, W, b_, Y), b, seed + 1, _probes(case))
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
            hyps = [("outputs swapped: return (d_W, d_b)", tg[1 - i])]
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
            for v, lab, shape in zip(values(r), labels, (args[1].shape, args[2].shape)):
                _float_array(v, lab, shape)
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

def _step_run(impl, case):
    """Build the model, set W0, b0, call step once: ('ok', (loss, params)) or ('err', reason)."""
    lr, (W0, b0) = case["lr"], case["points"][0][1:]
    D, K = W0.shape

    def run():
        model = _call(f"LogisticRegression({D}, {K}, {lr})", lambda: impl(D, K, lr))
        _call("setting model.params", lambda: setattr(model, "params", {"W": W0.copy(), "b": b0.copy()}))
        loss = _call("step", lambda: model.step(case["Xs"], case["Ys"]))
        return _snapshot((loss, _call("reading model.params", lambda: model.params)))
    return _timed(case, run)


def _run_step(impl, case):
    X, Y, lr, seed = case["X"], case["Y"], case["lr"], case["seed"]
    W0, b0 = case["points"][0][1], case["points"][0][2]
    N = X.shape[0]
    case = dict(case, Xs=X.copy(), Ys=Y.copy())
    r = _step_run(impl, case)
    targets = {"W": _nll_target(lambda W_: _nll(X, W_, b0, Y), W0, seed, _probes(case)),
               "b": _nll_target(lambda b_: _nll(X, W0, b_, Y), b0, seed + 1, _probes(case))}
    before = {"W": W0, "b": b0}

    def after(p):
        if r[0] == "err":
            raise _Reason(r[1])
        params = r[1][1]
        if type(params) is not dict:
            raise _Reason(f"model.params has type {_tname(params)} after step, expected a dict")
        if p not in params:
            raise _Reason(f"model.params has no '{p}' after step")
        a = _float_array(params[p], f"params['{p}']", before[p].shape, like=p)
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
        moved = lambda idx, got, e: (f"{_fmt_index(p, idx)}: changed by {-lr * got + 0.0:.4g}, "   # noqa: E731
                                     f"expected {-lr * e + 0.0:.4g}")
        return _compare(f"{p} update", implied, targets[p], (), step_factors + _n_factors(N)[1:], entry=moved)

    status = {}

    def loss_check():
        err = _step_loss(r, after, X, W0, b0, Y)
        _require_work({p: status[p] for p in "Wb"},
                      "the loss comes from the given code; it counts once W or b is updated")
        return err

    def inputs_check():
        after("W"), after("b")   # step must have run and left usable params
        bad = _changed([("X", case["Xs"], X), ("Y", case["Ys"], Y)])
        if bad:
            raise _Reason(f"modified its input {bad} in place")
        _require_work(status)

    res = {"W update": _guard(lambda: _graded(status, "W", lambda: param_check("W"))),
           "b update": _guard(lambda: _graded(status, "b", lambda: param_check("b")))}
    res["loss before update"] = _guard(lambda: _graded(status, "loss", loss_check))
    return {"loss before update": res["loss before update"], "W update": res["W update"],
            "b update": res["b update"], "inputs unchanged": _guard(inputs_check)}


def _step_loss(r, after, X, W0, b0, Y):
    """Rel. error of the returned loss against the loss before the update, or raise _Reason naming the mistake."""
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
    named = [text for value, text in _n_factors(X.shape[0])[1:]
             if want and abs(got / want - value) <= 1e-3 * value]
    raise _Reason(f"returned loss {got:.6g}, expected {want:.6g} (the loss before the update)"
                  + (f": {named[0]}" if named else ""), near=bool(named))


def _step_case(rng, N, D, K):
    case = _nll_case(rng, N, D, K)
    case["lr"] = STEP_LR
    return case


# --------------------------------------------------------------------------
# The item registry
# --------------------------------------------------------------------------

class Item:
    """One graded item.

    impl_name: the name the notebook defines (a class or function; check_all looks it up);
    points: sub-check -> points, the one place the split is written down (their sum is the test cell's points);
    run(impl, case): sub-check -> (ok, reason, max rel. error or None), in the order of ``points``;
    makers: rng -> one graded case, per shape; large: rng -> the large case;
    public(): self_check's cases; random(rng): one random case (tests, benchmark).
    """

    def __init__(self, impl_name, points, run, makers, large, public, random):
        self.impl_name, self.points, self.run = impl_name, dict(points), run
        self.makers, self.large, self.public, self.random = list(makers), large, public, random

    @property
    def total(self):
        return float(sum(self.points.values()))

    def cases(self, seeds, large=False):
        """The graded cases: one per (seed, shape), then with ``large`` the large case (of the first seed);
        their streams start from SEED_SALT when the grader set one."""
        cases = _seeded(seeds, self.makers, SEED_SALT)
        if large and seeds:
            cases.append(self.large(_stream(seeds[0], LARGE_STREAM, SEED_SALT)))
        return cases


def _stream(seed, k, salt=None):
    """The random stream of case k of ``seed``; a salt (the grader's SEED_SALT) makes it another one."""
    return np.random.default_rng([seed, k] if salt is None else [salt, seed, k])


def _seeded(seeds, makers, salt=None):
    """One case per (seed, maker); each gets its own stream so adding one changes no other."""
    return [make(_stream(seed, k, salt)) for seed in seeds for k, make in enumerate(makers)]


def layer_item(cls, forward, inputs, points, shapes, example, example_d_out, scalar_out=False,
               first_call_new_shape=False, random_shape=distinct_shape, large_shape=(500, 1000)):
    """Declare a layer item: the notebook's ``cls`` with ``forward(*inputs)`` and ``backward(d_out)``.

    Args:
        cls: the class name the notebook defines, e.g. "Multiply"
        forward: the reference forward pass, a function of the input arrays (the gradient is measured from it)
        inputs: the input names in forward's order, e.g. ("x", "y"); backward returns (d_x, d_y) (one: d_x)
        points: sub-check -> points for exactly "outputs", "d_<input>" per input, "latest cache",
            "inputs unchanged"
        shapes: the input shape of each graded case (per seed); use shapes with no two dimensions equal
        example: the public example's input arrays (self_check checks them first)
        example_d_out: its d_out (a float when scalar_out)
        scalar_out: forward returns a scalar, so d_out is a float
        first_call_new_shape: the earlier forward of the "latest cache" check gets other shapes (for layers
            whose gradient depends on the input's shape only, like Sum)
        random_shape: rng -> a random input shape (random trials of the tests and the benchmark)
        large_shape: the input shape of the large case (half a million entries or more, so that a forward
            call per entry cannot finish; each gradient is shaped like an input: the grader's RPC caps a reply
            at 16 MiB)
    Returns:
        an Item; add it to ITEMS under "<cls>.backward"
    """
    expected = {"outputs", "latest cache", "inputs unchanged"} | {"d_" + name for name in inputs}
    if set(points) != expected:
        raise ValueError(f"points of {cls} must name exactly the sub-checks {sorted(expected)}")
    layer = _Layer(cls, forward, tuple(inputs), scalar_out, first_call_new_shape)
    make = lambda shape: (lambda rng: _layer_case(layer, rng, shape))   # noqa: E731
    order = ["outputs", *layer.grads, "latest cache", "inputs unchanged"]
    return Item(
        cls, {name: points[name] for name in order}, lambda impl, case: _run_layer(layer, impl, case),
        makers=[make(s) for s in shapes], large=lambda rng: _layer_case(layer, rng, large_shape, large=True),
        public=lambda: ([_layer_case(layer, np.random.default_rng(PUBLIC_SEEDS[0]), np.shape(example[0]),
                                     example, example_d_out)]
                        + _seeded(PUBLIC_SEEDS, [make(shapes[0])])),
        random=lambda rng: _layer_case(layer, rng, random_shape(rng)))


def _model_item(impl_name, points, run, make_case, shapes, large_dims):
    """An item on (N, D, K) data: nll_grad or LogisticRegression.step."""
    return Item(impl_name, points, run, makers=[lambda rng, s=s: make_case(rng, *s) for s in shapes],
                large=lambda rng: _large_model_case(make_case(rng, *large_dims)),
                public=lambda: _seeded(PUBLIC_SEEDS, [lambda rng: make_case(rng, *shapes[0])]),
                random=lambda rng: make_case(rng, *_nll_dims(rng)))


def _large_model_case(case):
    """The large case, named by its size."""
    N, D = case["X"].shape
    return dict(case, large=f"X of shape ({N}, {D}), {case['Y'].shape[1]} classes")


_X_EX, _Y_EX = np.arange(1, 5.), np.arange(-1, 3.)   # the notebook's example vectors
_LAYER_SHAPES = [(3, 5), (6,), (2, 3, 4), (30, 70)]
_LAYER_POINTS = {"outputs": 0.25, "d_x": 0.5, "d_y": 0.5, "latest cache": 0.5, "inputs unchanged": 0.25}

# Large cases (layers: 500 x 1000 unless given): each returned gradient at most 4 MB (the RPC caps a reply at
# 16 MiB); a numerical gradient needs 2 x 500,000 forward calls of 500,000 entries for the layers, or 2 x 24,000
# losses of a 1200 x 800 X for nll_grad and step (~8 ms each): minutes, against ~0.1 s for a backward pass.
_LARGE_NLL = (1200, 800, 30)

ITEMS = {
    "Multiply.backward": layer_item(
        "Multiply", lambda x, y: x * y, ("x", "y"), _LAYER_POINTS, _LAYER_SHAPES,
        example=(_X_EX, _Y_EX), example_d_out=np.ones(4)),
    "Sum.backward": layer_item(
        "Sum", np.sum, ("x",), {"outputs": 0.25, "d_x": 0.5, "latest cache": 0.125, "inputs unchanged": 0.125},
        _LAYER_SHAPES, example=(_X_EX,), example_d_out=1.0, scalar_out=True, first_call_new_shape=True),
    "DotProduct.backward": layer_item(
        "DotProduct", np.dot, ("x", "y"), _LAYER_POINTS, [(6,), (11,), (700,)],
        example=(_X_EX, _Y_EX), example_d_out=1.0, scalar_out=True,
        random_shape=lambda rng: (int(np.exp(rng.uniform(np.log(2), np.log(1000)))),), large_shape=(500_000,)),
    "nll_grad": _model_item(
        "nll_grad", {"outputs": 0.5, "d_W": 1.0, "d_b": 1.0, "inputs unchanged": 0.5}, _run_nll, _nll_case,
        [(7, 5, 3), (11, 4, 6), (30, 8, 10)], _LARGE_NLL),
    "LogisticRegression.step": _model_item(
        "LogisticRegression", {"loss before update": 0.5, "W update": 0.75, "b update": 0.5,
                               "inputs unchanged": 0.25}, _run_step, _step_case, [(7, 5, 3), (11, 4, 6)],
        _LARGE_NLL),
}


# --------------------------------------------------------------------------
# Running the checks
# --------------------------------------------------------------------------

def run_checks(item, impl, seeds=GRADE_SEEDS, cases=None, large=False):
    """Run every sub-check of ``item`` on every case.

    Args:
        item: a key of ITEMS
        impl: the student's class or function
        seeds: which graded cases to build (ignored when ``cases`` is given)
        cases: explicit cases, e.g. ``ITEMS[item].public()`` or ``[ITEMS[item].random(rng)]``
        large: also the item's large case (with ``seeds``)
    Returns:
        dict sub-check -> Result(earned, possible, reason, max rel. error or None);
        a sub-check earns its points only if it passes on every case, and
        ``reason`` is the diagnosis from the first case where it failed.
    """
    spec = ITEMS[item]
    cases = spec.cases(seeds, large) if cases is None else cases
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
    return {name: Result(spec.points[name] if s[0] else 0.0, spec.points[name], s[1], s[2])
            for name, s in state.items()}


def first_diagnosis(results):
    """The diagnosis self_check shows: the first failed sub-check's, skipping "not counted/checked yet"
    (which only say that another sub-check failed); None when everything passed."""
    failed = [r.reason for r in results.values() if r.earned < r.possible]
    return next((f for f in failed if not f.startswith("not c")), failed[0]) if failed else None


# --------------------------------------------------------------------------
# Showing results: coloured HTML in Jupyter, plain text elsewhere
# --------------------------------------------------------------------------

def _colour(passed):
    return "#1b7f2a" if passed else "#c62828"


def _in_jupyter():
    """Inside a Jupyter kernel, where display() reaches the notebook (IPython is never imported here)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None
    return getattr(shell, "kernel", None) is not None


def _display(text, html_text):
    """HTML with a text/plain fallback in Jupyter; the text on stdout elsewhere."""
    if _in_jupyter():
        from IPython.display import display
        display({"text/plain": text, "text/html": html_text}, raw=True)
    else:
        print(text)


def show_line(line, passed, hint=None):
    """Show one self-check line (and an optional hint line under it).

    While autograding it goes to stdout: the points come from grade(), and nbgrader zeroes a test cell that
    wrote to stderr. Under `nbgrader validate` or outside Jupyter a failure goes to stderr, so validate lists
    the cell as failing. In JupyterLab: green or red HTML (class gradcheck-pass / gradcheck-fail), with the
    same text as text/plain.
    """
    mode = os.environ.get("NBGRADER_EXECUTION")
    if mode == "autograde":
        print(line)
        return
    text = line if hint is None else f"{line}\n  {hint}"
    if mode is None and _in_jupyter():
        more = "" if hint is None else f'<br><span style="color:#555">&nbsp;&nbsp;{html.escape(hint)}</span>'
        _display(text, f'<div class="gradcheck-{"pass" if passed else "fail"}" style="color:{_colour(passed)}; '
                       f'font-family:monospace; white-space:pre-wrap">{html.escape(line)}{more}</div>')
    else:
        print(text, file=sys.stdout if passed else sys.stderr)


SUMMARY_HEADER = ("Self-checks on public examples (the grader checks more cases). Every sub-check of an item: "
                  'gradcheck.grade(item, answer), e.g. gradcheck.grade("Sum.backward", Sum)')


def show_table(rows):
    """Show check_all's table: rows of (passed, item, points earned, points possible, diagnosis), then the
    line "Public checks: X/Y points". HTML <table class="gradcheck-summary"> with a text/plain fallback."""
    earned, possible = sum(row[2] for row in rows), sum(row[3] for row in rows)
    footer = f"Public checks: {earned:g}/{possible:g} points"
    lines = [f"{'✓' if ok else '✗'} {item:<24} {f'{got:g}/{pts:g}':>9}  {text}"
             for ok, item, got, pts, text in rows]
    left = 'style="text-align:left"'   # JupyterLab right-aligns table cells
    cells = "".join(
        f'<tr><td style="color:{_colour(ok)}">{"✓" if ok else "✗"}</td><td {left}><code>{html.escape(item)}</code>'
        f'</td><td>{got:g}/{pts:g}</td><td {left}>{html.escape(text)}</td></tr>'
        for ok, item, got, pts, text in rows)
    table = (f'<table class="gradcheck-summary"><caption {left}>{html.escape(SUMMARY_HEADER)}</caption>{cells}'
             f'<tr><td colspan="4"><b>{footer}</b></td></tr></table>')
    _display("\n".join([SUMMARY_HEADER, *lines, footer]), table)


def training_problem(losses):
    """What looks wrong with a training run's losses (one per epoch, in order), or None: nan/inf, a loss
    above the first one (a correct run here dips back up once, by 0.06, but never above its start), or a
    last loss above 0.9 x the first (a correct run ends at 0.04 x)."""
    values = [float(v) for v in losses if isinstance(v, (int, float, np.number))]
    if not values:
        return None
    bad = next((k for k, v in enumerate(values) if not np.isfinite(v)), None)
    if bad is not None:
        return f"became {values[bad]} at epoch {bad}"
    top = int(np.argmax(values))
    if values[top] > values[0]:
        return f"went up, from {values[0]:.4f} at epoch 0 to {values[top]:.4g} at epoch {top}"
    if len(values) > 1 and values[-1] > 0.9 * values[0]:
        return f"hardly went down: {values[0]:.4f} at epoch 0, {values[-1]:.4f} at epoch {len(values) - 1}"
    return None
