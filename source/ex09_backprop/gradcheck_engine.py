"""The checking engine behind gradcheck.py: cases, sub-checks, named mistakes, points.

Students need not read this file; ``gradcheck.py`` says what is called, what must come back and how a
gradient is compared. Instructors change the graded items here, in ``ITEMS``.

The checker's modules (all shipped next to the notebook; the grader loads trusted copies of each)
-------------------------------------------------------------------------------------------------
* ``gradcheck_engine.py`` (this file): the item registry, cases, ``run_checks``.
* ``gradcheck_records.py``: what a check found, as data -- a ``CheckResult`` per sub-check (item, sub-check,
  points earned and possible, a ``Diagnosis`` with a stable mistake code such as ``missing_1_over_n``, the worst
  entry and both values there, the max rel. error); ``grade`` hands them to the grader, which stores them in
  the test cell's metadata for the class report.
* ``gradcheck_text.py``: every word said about a result (``TEMPLATES``), rendered from the records in one place;
  ``gradcheck_display.py``: the HTML/plain-text display of those words.
* ``gradcheck_values.py``: calling the answer and validating what it returns; ``gradcheck_compare.py``:
  comparing a gradient with finite differences and naming the mistake; ``gradcheck_layers.py`` and
  ``gradcheck_models.py``: the sub-checks of the layer items and of nll_grad / LogisticRegression.step.

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

The reference forward pass is all the released checker knows of a layer: the true gradient is measured from it
by finite differences. The grader also has the instructor's reference backward passes (gradcheck_reference.py,
never released; ``reference()``): graded cases then compare every entry with the reference's gradient, once it
agrees with finite differences along one random direction (a disagreeing reference is never used: finite
differences as without one). Public cases (``self_check``) always use finite differences. ``nll_grad`` and
``LogisticRegression.step`` have their own runners (gradcheck_models.py); layers run in gradcheck_layers.py.

Cases
-----
A graded case is one seed x one shape of the item (``cases(seeds)``). ``gradcheck.grade(..., large=True)`` (the
grader's hidden tests) adds the item's **large case** last: half a million entries per input or more
(``large_shape``, ``_LARGE_NLL``), where a backward pass takes milliseconds but differentiating numerically --
one or two forward calls per entry -- takes minutes to hours. Its calls must finish within LARGE_SECONDS, or
every sub-check fails on it with the diagnosis "too slow on the large case". Without the reference,
LARGE_PROBES random directions keep checking it cheap; with it, one random direction per salt (drawn once,
gradcheck_compare.direction) verifies the reference. It calls ``forward`` once (the small cases check the cache).

While the grader sets ``SEED_SALT`` on its trusted copy (a course secret mixed with a hash of the submission),
every graded case's random stream starts from the salt too: the same submission gets the same cases on a
re-run, a changed one other cases. Public cases (``self_check``) are never salted.

Sub-checks (each earns its points only if it passes on every case, seed x shape):

* ``d_<input>`` (``d_W``, ``W update``, ...): the gradient matches the true one (see above) within TOL.
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
Against the reference backward (graded cases in the grader) every entry is compared, with the same err, floor
and TOL: each mistake fails and is named as against finite differences; a right answer's err is ~1e-14.

Measured on the reference solutions (benchmarks/bench_gradcheck.py, 10,000 random trials per item: random
seed, shapes with distinct dimensions, scales 0.1-10): no false failure; the largest err was 4.7e-7 (nll_grad
and step; layers <= 2.3e-7), so TOL = 1e-5 leaves a margin of ~20; |a - e| never exceeded 1.2 noise units
(NOISE_ULPS = 16). Without the NOISE term a correct nll_grad reaches err = 1 and a correct step 1.2e-5. The
mistakes of grading/fixtures/bug_catalog.py are off by 1e-2 or more; a float32 result (err ~3e-8) passes the
value checks and fails only "outputs".
"""
import numpy as np

import gradcheck_records as rec
import gradcheck_text as text
from gradcheck import EPS, TOL  # noqa: F401 -- re-exported: the engine's numbers in one place
from gradcheck_compare import (DIAG_TOL, FLOOR, MAX_ENTRYWISE, NOISE_ULPS, NUM_PROBES,  # noqa: F401
                               Comparison, directional_derivatives, observe)
from gradcheck_display import show_line, show_table, training_problem  # noqa: F401 -- gradcheck.py's helpers
from gradcheck_layers import LARGE_PROBES, Layer, distinct_shape, layer_case, run_layer  # noqa: F401
from gradcheck_models import STEP_LR, nll_case, nll_dims, run_nll, run_step, step_case  # noqa: F401
from gradcheck_records import CheckResult

GRADE_SEEDS = (1, 2, 3)
LARGE_SECONDS = 10.0  # a large case's calls must finish within this; a correct answer takes < 0.1 s there
PUBLIC_SEEDS = (101, 102)
LARGE_STREAM = 999    # the large case's random stream: [seed, LARGE_STREAM] (small cases use [seed, shape index])
SEED_SALT = None      # set by the grader on its trusted copy (an int): mixed into every graded case's stream
USE_REFERENCE = True  # graded cases compare with the reference backward where it exists (see reference())


# --------------------------------------------------------------------------
# The item registry
# --------------------------------------------------------------------------

class Item:
    """One graded item.

    impl_name: the name the notebook defines (a class or function; check_all looks it up);
    points: sub-check -> points, the one place the split is written down (their sum is the test cell's points);
    run(impl, case): sub-check -> (ok, Diagnosis or None, max rel. error or None), in the order of ``points``;
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
            # its time limit is read here, so that setting gradcheck_engine.LARGE_SECONDS takes effect
            cases.append(dict(self.large(_stream(seeds[0], LARGE_STREAM, SEED_SALT)), limit=LARGE_SECONDS))
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
    layer = Layer(cls, forward, tuple(inputs), scalar_out, first_call_new_shape)
    make = lambda shape: (lambda rng: layer_case(layer, rng, shape))   # noqa: E731
    order = ["outputs", *layer.grads, "latest cache", "inputs unchanged"]
    return Item(
        cls, {name: points[name] for name in order}, lambda impl, case: run_layer(layer, impl, case),
        makers=[make(s) for s in shapes], large=lambda rng: layer_case(layer, rng, large_shape, large=True),
        public=lambda: ([layer_case(layer, np.random.default_rng(PUBLIC_SEEDS[0]), np.shape(example[0]),
                                     example, example_d_out)]
                        + _seeded(PUBLIC_SEEDS, [make(shapes[0])])),
        random=lambda rng: layer_case(layer, rng, random_shape(rng)))


def _model_item(impl_name, points, run, make_case, shapes, large_dims):
    """An item on (N, D, K) data: nll_grad or LogisticRegression.step."""
    return Item(impl_name, points, run, makers=[lambda rng, s=s: make_case(rng, *s) for s in shapes],
                large=lambda rng: _large_model_case(make_case(rng, *large_dims)),
                public=lambda: _seeded(PUBLIC_SEEDS, [lambda rng: make_case(rng, *shapes[0])]),
                random=lambda rng: make_case(rng, *nll_dims(rng)))


def _large_model_case(case):
    """The large case, named by its size."""
    N, D = case["X"].shape
    return dict(case, large=rec.Diagnosis("large_model", rec.PASSED, {"N": N, "D": D, "K": case["Y"].shape[1]}))


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
        "nll_grad", {"outputs": 0.5, "d_W": 1.0, "d_b": 1.0, "inputs unchanged": 0.5}, run_nll, nll_case,
        [(7, 5, 3), (11, 4, 6), (30, 8, 10)], _LARGE_NLL),
    "LogisticRegression.step": _model_item(
        "LogisticRegression", {"loss before update": 0.5, "W update": 0.75, "b update": 0.5,
                               "inputs unchanged": 0.25}, run_step, step_case, [(7, 5, 3), (11, 4, 6)],
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
        dict sub-check -> CheckResult (gradcheck_records.py), in the order of the item's points;
        a sub-check earns its points only if it passes on every case, and its
        diagnosis is the one from the first case where it failed.
    """
    spec = ITEMS[item]
    ref = reference() if cases is None else None   # public and explicit cases: finite differences only
    cases = spec.cases(seeds, large) if cases is None else cases
    if not cases:   # nothing checked must not mean full points
        raise ValueError("no cases to check: give at least one seed")
    failed, errors = {}, {}
    for case in cases:
        case = case if ref is None else dict(case, reference=ref, vseed=0 if SEED_SALT is None else SEED_SALT)
        for name, (ok, diagnosis, err) in spec.run(impl, case).items():
            if not ok:
                failed.setdefault(name, diagnosis)
            if err is not None:
                errors[name] = max(errors.get(name, err), err)
    return {name: CheckResult(item, name, 0.0 if name in failed else points, points, failed.get(name),
                              errors.get(name)) for name, points in spec.points.items()}


def reference():
    """The instructor's reference backward passes (gradcheck_reference.py, which only the grader has: it is
    never released), or None: graded cases then measure the true gradients by finite differences alone."""
    if not USE_REFERENCE:
        return None
    try:
        import gradcheck_reference
    except ImportError:
        return None
    return gradcheck_reference


def first_diagnosis(results):
    """The diagnosis self_check shows (rendered): the first failed sub-check's, skipping "not counted/checked
    yet" (which only say that another sub-check failed); None when everything passed."""
    failed = [r.diagnosis for r in results.values() if not r.passed]
    if not failed:
        return None
    return text.render(next((d for d in failed if d.code != rec.NOT_COUNTED), failed[0]))
