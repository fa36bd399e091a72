"""Comparing one returned gradient with the true one (measured by finite differences) and naming the mistake.
The tolerances and why they are what they are: gradcheck_engine.py's docstring."""
import contextlib
from collections import namedtuple

import numpy as np

import gradcheck_records as rec
import nn
from gradcheck import EPS, TOL, numerical_gradient, rel_error
from gradcheck_records import Diagnosis
from gradcheck_values import Reason, fail, float_array, phrase

FLOOR = 1e-3          # floor of the denominator, relative to the largest true entry
NOISE_ULPS = 16       # rounding noise of one evaluation of L, in units of eps_machine * sum|L terms|
DIAG_TOL = 1e-4       # looser match used only to *name* a mistake (never to grade)
MAX_ENTRYWISE = 256   # larger tensors are checked along random directions
NUM_PROBES = 6

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


def nll(X, W, b, Y):
    """Reference loss: mean NLL of softmax(X @ W + b), a float."""
    return nll_of_logits(X @ W + b, Y)


def nll_of_logits(logits, Y):
    """The same loss from the logits (a caller that varies b alone computes X @ W once)."""
    return nn.CategoricalCrossEntropy().forward(logits, Y)


def nll_target(f, x, seed, probes=None, exact=None, vseed=0, magnitude=None):
    """Target for a loss f(x): L = mean(log(sum exp) - logit), and log of a sum >= 1
    is rounded to ~eps_machine in absolute terms even when L ~ 0: magnitude |L| + 1 (``magnitude``: a cheaper
    way to compute the same)."""
    return Target(f, x, 1.0, seed, magnitude=magnitude or (lambda: abs(f(x)) + 1.0), probes=probes, exact=exact,
                  vseed=vseed)


class Target:
    """True gradient of sum(f(x) * d_out) w.r.t. x; computed on first use."""

    def __init__(self, f, x, d_out, seed, magnitude=None, probes=None, exact=None, vseed=0):
        """magnitude: sum of |terms| added up to compute L, which sets its rounding
        noise; the default |L| is too small when terms cancel (the layers pass theirs).
        probes: always check along this many random directions (the large cases), else
        entry by entry up to MAX_ENTRYWISE entries and along NUM_PROBES directions above.
        exact: () -> the reference backward's gradient (the grader's hidden checks): then every entry is
        compared with it, once it agrees with finite differences along the random direction of ``vseed``."""
        self.f, self.x, self.d_out, self.seed = f, x, d_out, seed
        self.magnitude = magnitude or (lambda: float(np.sum(np.abs(f(x) * np.asarray(d_out)))))
        self.fd_entrywise = probes is None and x.size <= MAX_ENTRYWISE
        self.probes = probes or NUM_PROBES
        self.exact, self.vseed = exact, vseed
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

    def expected(self):
        """The true gradient entry by entry, shape x.shape: the reference's (once verified), else measured by
        finite differences up to MAX_ENTRYWISE entries; None: checked along random directions instead."""
        if self._full is None and self.exact is not None:
            exact, self.exact = self.exact, None   # one that fails or disagrees with finite differences: unused
            try:
                g = np.asarray(exact(), dtype=np.float64)
                self._full = g if g.shape == self.x.shape and self._agrees(g) else None
            except Exception:
                self._full = None
        if self._full is None and self.fd_entrywise:
            self._full = numerical_gradient(self.f, self.x, self.d_out)
        return self._full

    @property
    def entrywise(self):
        return self.expected() is not None

    def _agrees(self, g):
        """Does g match finite differences along one random direction within TOL (the rule for big arrays)?"""
        x = np.asarray(self.x, dtype=np.float64)
        v, norm = direction(x.size, self.vseed)
        h = EPS * max(1.0, float(np.linalg.norm(x)))
        hv = (h / norm) * v.reshape(x.shape)      # a step of length h, without normalising v itself
        xp, xm = x + hv, x - hv
        diff = np.asarray(self.f(xp), dtype=np.float64) - np.asarray(self.f(xm), dtype=np.float64)
        d_out = np.asarray(self.d_out, dtype=np.float64)
        numeric = (np.vdot(diff, d_out) if diff.ndim else float(diff) * float(d_out)) / (2 * h)
        analytic = np.vdot(g, xp - xm) / (2 * h)   # the step actually taken: rounding of x + hv cancels
        return rel_error(analytic, numeric, self.floor(np.array([numeric]))) <= TOL


_DIRECTION = {}   # the latest vseed -> (standard normal float64 entries, {size: norm of the first size})


def direction(size, vseed):
    """The first ``size`` entries of one random vector per ``vseed`` (the engine's SEED_SALT: one per
    submission) and their norm. Drawn once and shared by every target of that size or smaller."""
    v, norms = _DIRECTION.get(vseed, (np.empty(0), {}))
    if v.size < size:
        v, norms = np.random.default_rng([7919, vseed]).standard_normal(max(size, 2 * v.size, 1024)), {}
        _DIRECTION.clear()
        _DIRECTION[vseed] = (v, norms)
    if size not in norms:
        norms[size] = float(np.linalg.norm(v[:size]))
    return v[:size], norms[size]


def project(target, a, seed):
    """(got, expected) as vectors: all entries, or directional derivatives along the
    random directions drawn from ``seed`` (so two targets can share directions)."""
    e = target.expected()
    if e is not None:
        return a.ravel(), e.ravel()
    return directional_derivatives(target.f, target.x, target.d_out, a, target.probes, seed=seed)


def _close(got, e, target):
    return rel_error(got, e, target.floor(e)).max() <= DIAG_TOL


def _explains(a, alt, seed):
    """Does the alternative target ``alt`` (a named mistake) explain the value a?"""
    return a.shape == alt.x.shape and _close(*project(alt, a, seed), alt)


def name_factor(c, factors):
    """The phrase of a constant factor c: one of ``factors`` ((value, phrase)), all zeros, or the factor."""
    for value, named in factors:
        if abs(c - value) <= 1e-3 * max(abs(value), 1e-3):
            return named
    return phrase("all_zeros", rec.ALL_ZEROS) if c == 0 else phrase("constant_factor", rec.CONSTANT_FACTOR, c=c)


def worst_entry(label):
    """Default wording of the worst entry: 'worst d_W[3, 0]: got 2.793, expected 0.3989 (rel. error 0.75)'."""
    return lambda idx, got, e, err: phrase("worst_entry", label=label, index=idx, got=got, expected=e, rel=err)


def _wrong_shape(label, a, target, hyps, shape_hint):
    """Raise the diagnosis of a gradient whose shape is not its input's."""
    shape = target.x.shape
    for named, alt in hyps:
        if _explains(a, alt, alt.seed):
            fail("named_shape", named.code, near=True, label=label, mistake=named)
    if a.ndim == 2 and a.T.shape == shape and _explains(a.T, target, target.seed):
        fail("is_transposed", rec.TRANSPOSED, near=True, label=label, shape=a.shape, want=shape)
    if shape_hint:
        fail("shape_wrong_axis", rec.WRONG_AXIS, label=label, shape=a.shape, want=shape)
    fail("wrong_shape", rec.WRONG_SHAPE, label=label, shape=a.shape, want=shape)


def compare(label, value, target, hyps=(), factors=(), wrong_axis=False, entry=None):
    """Compare one returned gradient with the finite-difference target.

    Returns the max relative error if it is within TOL, else raises Reason with a diagnosis: a named mistake if
    one of ``hyps`` (phrase, alternative Target: the gradient that mistake would give) or a constant factor
    (``factors``: (value, phrase)) explains the value, then the worst entry (``entry(index, got, expected,
    rel. error)`` phrases it) or worst random direction. ``wrong_axis``: a wrong shape may be a sum over the
    wrong axis.
    """
    a = float_array(value, label, target.x.shape)
    if a.shape != target.x.shape:
        _wrong_shape(label, a, target, hyps, wrong_axis)
    if not np.all(np.isfinite(a)):
        fail("contains_nan", rec.NOT_FINITE, label=label)
    got, e = project(target, a, target.seed)   # large tensors: along random directions
    floor = target.floor(e)
    for callback in _observers:
        callback(Comparison(label, got, e, floor, target.noise))
    err = rel_error(got, e, floor)
    if err.max() <= TOL:
        return float(err.max())
    named, c = next((named for named, alt in hyps if _explains(a, alt, target.seed)), None), None
    if named is None and np.dot(e, e) > 0:
        c = 0.0 if np.all(got == 0) else np.dot(got, e) / np.dot(e, e)
        if c == 0.0 or _close(got, c * e, target):
            named = name_factor(c, factors)
    k = int(np.argmax(err))
    idx = np.unravel_index(k, a.shape) if target.entrywise else None
    if target.entrywise:
        where = (entry or worst_entry(label))(idx, float(got[k]), float(e[k]), float(err[k]))
    else:
        where = phrase("worst_direction", label=label, got=float(got[k]), expected=float(e[k]), rel=float(err[k]))
    worst = dict(worst=None if idx is None else tuple(int(i) for i in idx), got=float(got[k]), expected=float(e[k]))
    if named is not None:
        raise Reason(Diagnosis("named", named.code, {"label": label, "mistake": named, "where": where}, **worst),
                     near=c != 0.0)
    raise Reason(Diagnosis("wrong_values", rec.WRONG_VALUES, {"label": label, "where": where}, **worst))


SIGN = [(-1.0, phrase("sign_flipped", rec.SIGN_FLIPPED))]


def n_factors(N):
    return SIGN + [(float(N), phrase("missing_1_over_n", rec.MISSING_1_OVER_N, N=N)),
                   (1.0 / N, phrase("extra_1_over_n", rec.EXTRA_1_OVER_N, N=N))]
