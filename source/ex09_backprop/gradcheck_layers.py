"""Checking a layer: forward(*inputs), then backward(d_out). Declared in gradcheck_engine.layer_item."""
import numpy as np

import gradcheck_records as rec
from gradcheck_compare import SIGN, Target, compare
from gradcheck_values import (attempt, call, changed, fail, float_array, graded, guard, phrase,
                              require_work, snapshot, strict, timed, values_of)

LARGE_PROBES = 2      # random directions per gradient of a large case (each costs two reference forward passes)


class Layer:
    """What differs between layers: see gradcheck_engine.layer_item()."""

    def __init__(self, cls, forward, inputs, scalar_out, first_call_new_shape):
        self.cls, self.forward, self.inputs = cls, forward, inputs
        self.grads = tuple("d_" + n for n in inputs)
        self.scalar_out = scalar_out                      # d_out is a float
        self.first_call_new_shape = first_call_new_shape  # Sum: grads depend on shape only


def probes(case):
    """Directions a large case's gradients are checked along (None: the usual rule, see Target)."""
    return LARGE_PROBES if "large" in case else None


def _first_shape(shape):
    return shape[::-1] if len(shape) > 1 else (shape[0] + 1,)


def _random_d_out(rng):
    """A float d_out with |d_out| away from 1, so 'ignored' and 'sign' are distinct."""
    while True:
        d = float(np.exp(rng.uniform(np.log(0.3), np.log(3.0))))
        if abs(d - 1.0) > 0.2:
            return d if rng.random() < 0.5 else -d


def layer_case(layer, rng, shape, inputs=None, d_out=None, large=False):
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
        case["large"] = phrase("large_layer", inputs=", ".join(layer.inputs), shape=shape)
    return case


def reference_of(case, name):
    """(the reference backward named ``name``, the direction seed) of a graded case the engine gave the
    reference to (gradcheck_engine.run_checks), else (None, 0): true gradients by finite differences."""
    ref = case.get("reference")
    found = None if ref is None else getattr(ref, name, None) if name == "nll_grad" else ref.LAYERS.get(name)
    return found, case.get("vseed", 0)


def _layer_targets(layer, inputs, first, d_out, seed, probes=None, ref=(None, 0)):
    """The true gradients, and hyps(i, stale): the named mistakes of input i as the gradient each would give.
    ref: (the reference backward of the layer or None, direction seed), see reference_of."""
    n, labels = len(inputs), layer.grads
    backward, vseed = ref

    def fwd_of(i, args):   # the forward pass as a function of input i alone
        return lambda v: layer.forward(*[v if j == i else args[j] for j in range(n)])

    def target(i, args, d):   # the gradient w.r.t. input i at args, d_out = d
        exact = None if backward is None else (lambda: backward(args, d)[i])
        return Target(fwd_of(i, args), args[i], d, seed + i, magnitude, probes, exact, vseed)
    # Rounding noise of L scales with the sum of |terms|: the forward of |inputs|.
    magnitude = lambda: float(np.sum(np.abs(layer.forward(*map(np.abs, inputs)) * d_out)))  # noqa: E731
    targets = [target(i, inputs, d_out) for i in range(n)]
    ones = 1.0 if layer.scalar_out else np.ones_like(d_out)

    def hyps(i, stale):
        h = [(phrase("stale_cache", rec.STALE_CACHE), target(i, first, d_out))] if stale else []
        h += [(phrase("outputs_swapped", rec.OUTPUTS_SWAPPED, label=labels[i], other=layer.inputs[j]), targets[j])
              for j in range(n) if j != i]
        return h + [(phrase("d_out_ignored", rec.D_OUT_IGNORED), target(i, inputs, ones))]
    return targets, hyps


def _runs(layer, impl, case):
    """Run the answer: once (forward, backward), and forward twice then backward (not in the large case).
    Returns (r1, r2, sent, sent_d): the runs and what must be unchanged afterwards."""
    inputs, first, d_out = case["inputs"], case["first"], case["d_out"]
    keep = lambda d: d.copy() if isinstance(d, np.ndarray) else d   # noqa: E731
    sent1, d1 = [v.copy() for v in inputs], keep(d_out)
    # (sent copies, the arrays they copy): what must be unchanged afterwards
    sent = [(sent1, inputs)] + ([] if first is None else [([v.copy() for v in first], first),
                                                          ([v.copy() for v in inputs], inputs)])
    sent_d = [d1] + ([] if first is None else [keep(d_out)])

    def run(forwards, d):
        obj = call(f"{layer.cls}()", impl)
        for args in forwards:
            call("forward", lambda: obj.forward(*args))
        return snapshot(call("backward", lambda: obj.backward(d)))
    r1 = timed(case, lambda: run([sent1], d1))
    # forward twice, then backward (the large case skips this: it times one backward)
    r2 = None if first is None else attempt(lambda: run([sent[1][0], sent[2][0]], sent_d[1]))
    return r1, r2, sent, sent_d


def run_layer(layer, impl, case):
    """sub-check -> (ok, Diagnosis or None, max rel. error or None) for one case."""
    inputs, first, d_out = case["inputs"], case["first"], case["d_out"]
    n, labels = len(inputs), layer.grads
    r1, r2, sent, sent_d = _runs(layer, impl, case)
    targets, hyps = _layer_targets(layer, inputs, first, d_out, case["seed"], probes(case),
                                   reference_of(case, layer.cls))
    status = {}

    def latest_check():
        right = [i for i in range(n) if status[i] == "right"]
        if not right:
            fail("not_checked_latest", rec.NOT_COUNTED)
        if r2 is None:
            return None
        vals = values_of(r2, labels, "backward")   # gradients right after one forward must stay right after two
        return max(compare(labels[i], vals[i], targets[i], hyps(i, True), SIGN) for i in right)

    def inputs_check():
        for r in (r1, r2) if r2 else (r1,):   # a stub that returns nothing usable earns nothing here
            for v, lab, inp in zip(values_of(r, labels, "backward"), labels, inputs):
                float_array(v, lab, inp.shape)
        pairs = [(name, s, o) for copies, orig in sent for name, s, o in zip(layer.inputs, copies, orig)]
        if not layer.scalar_out:   # a float d_out cannot be modified
            pairs += [("d_out", d, d_out) for d in sent_d]
        bad = changed(pairs)
        if bad:
            fail("modified_input", rec.INPUT_MODIFIED, name=bad)
        require_work(status)

    def outputs_check():
        strict(values_of(r1, labels, "backward"), labels, [v.shape for v in inputs])
        require_work(status)

    res = {labels[i]: guard(lambda i=i: graded(status, i, lambda: compare(
        labels[i], values_of(r1, labels, "backward")[i], targets[i], hyps(i, False), SIGN))) for i in range(n)}
    res["outputs"] = guard(outputs_check)
    res["latest cache"] = guard(latest_check)
    res["inputs unchanged"] = guard(inputs_check)
    return res


def distinct_shape(rng, low=2, high=12):
    """A random shape of 1-3 dimensions, no two equal (a transposed or mis-reduced gradient cannot pass)."""
    ndim = int(rng.integers(1, 4))
    return tuple(int(d) for d in rng.choice(np.arange(low, high + 1), ndim, replace=False))

