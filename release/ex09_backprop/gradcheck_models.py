"""Checking the model items: nll_grad(X, W, b, Y) and LogisticRegression.step, on (N, D, K) data."""
import numpy as np

import gradcheck_records as rec
from gradcheck import TOL
from gradcheck_compare import DIAG_TOL, compare, n_factors, nll, nll_of_logits, nll_target, phrase
from gradcheck_layers import probes, reference_of
from gradcheck_records import Diagnosis
from gradcheck_values import (Reason, call, changed, fail, float_array, float_scalar, graded, guard, require_work,
                              snapshot, strict, timed, tname, values_of)

STEP_LR = 0.37        # not the default 1e-2, so an ignored learning rate shows


def nll_case(rng, N, D, K):
    """Random X, one-hot Y; W, b with logits of scale 0.3-3; and the W = 0 point."""
    sx, sl = 10 ** rng.uniform(-1, 1), 10 ** rng.uniform(-0.5, 0.5)
    X = sx * rng.standard_normal((N, D))
    Y = np.eye(K)[rng.integers(0, K, N)]
    W = rng.standard_normal((D, K)) * sl / (sx * np.sqrt(D))
    b = sl * rng.standard_normal(K)
    points = [("random", W, b), ("W = 0", np.zeros((D, K)), np.zeros(K))]
    return {"X": X, "Y": Y, "points": points, "seed": int(rng.integers(2**31))}


def nll_dims(rng):
    while True:   # no two dimensions equal, so a transposed result cannot pass
        N, D, K = int(rng.integers(2, 41)), int(rng.integers(1, 10)), int(rng.integers(2, 10))
        if len({N, D, K}) == 3:
            return N, D, K


def _nll_runs(impl, case):
    """One call per point (random W, b; W = 0): (tag, args, sent copies, run, (target W, target b))."""
    X, Y, seed = case["X"], case["Y"], case["seed"]
    runs = []
    for tag, W, b in case["points"]:
        sent = [X.copy(), W.copy(), b.copy(), Y.copy()]
        if runs and runs[-1][3][0] == "err" and runs[-1][3][1].code == rec.TOO_SLOW:
            r = runs[-1][3]   # once too slow, the large case waits for no further call
        else:
            r = timed(case, lambda s=sent: snapshot(call("nll_grad", lambda: impl(*s))))
        tW, tb = _nll_targets(X, W, b, Y, seed, case)
        runs.append((tag, [X, W, b, Y], sent, r, (tW, tb)))
    return runs


def _nll_targets(X, W, b, Y, seed, case):
    """The targets of d_W and d_b at (W, b): the reference's gradients in a graded case, see reference_of."""
    grad, vseed = reference_of(case, "nll_grad")
    XW = X @ W   # once per point: the loss as a function of b needs no other product (the same floats as nll)
    loss_b = lambda b_: nll_of_logits(XW + b_, Y)   # noqa: E731
    magnitude = lambda: abs(loss_b(b)) + 1.0        # noqa: E731
    both = []

    def exact(k):   # both reference gradients in one call, on first use
        both[:] = both or grad(X, W, b, Y)
        return both[k]
    ex = (None, None) if grad is None else (lambda: exact(0), lambda: exact(1))
    return (nll_target(lambda W_: nll(X, W_, b, Y), W, seed, probes(case), ex[0], vseed, magnitude),
            nll_target(loss_b, b, seed + 1, probes(case), ex[1], vseed, magnitude))


def run_nll(impl, case):
    N = case["Y"].shape[0]
    labels, names = ("d_W", "d_b"), ("X", "W", "b", "Y")
    runs = _nll_runs(impl, case)
    status = {}

    def outputs_check():
        for tag, args, sent, r, _ in runs:
            strict(values_of(r, labels, "nll_grad"), labels, [args[1].shape, args[2].shape])
        require_work(status)

    def grad_check(i):
        errs, fails = [], {}
        for tag, args, sent, r, tg in runs:
            hyps = [(phrase("outputs_swapped_return", rec.OUTPUTS_SWAPPED, names="d_W, d_b"), tg[1 - i])]
            try:
                errs.append(compare(labels[i], values_of(r, labels, "nll_grad")[i], tg[i], hyps, n_factors(N),
                                    wrong_axis=i == 1))
            except Reason as reason:
                fails[tag] = reason
        if "random" in fails and "W = 0" not in fails:
            cause = fails["random"].diagnosis
            raise Reason(Diagnosis("right_only_at_w0", rec.RIGHT_ONLY_AT_W0, {"cause": cause}, cause.worst,
                                   cause.got, cause.expected), near=True)
        if fails:
            raise Reason(next(iter(fails.values())).diagnosis, near=all(f.near for f in fails.values()))
        return max(errs)

    def inputs_check():
        for tag, args, sent, r, _ in runs:
            for v, lab, shape in zip(values_of(r, labels, "nll_grad"), labels, (args[1].shape, args[2].shape)):
                float_array(v, lab, shape)
        bad = changed([(nm, s, o) for _, args, sent, _, _ in runs for nm, s, o in zip(names, sent, args)])
        if bad:
            fail("modified_input", rec.INPUT_MODIFIED, name=bad)
        require_work(status)

    res = {"d_W": guard(lambda: graded(status, 0, lambda: grad_check(0))),
           "d_b": guard(lambda: graded(status, 1, lambda: grad_check(1)))}
    return {"outputs": guard(outputs_check), **res, "inputs unchanged": guard(inputs_check)}


def step_case(rng, N, D, K):
    case = nll_case(rng, N, D, K)
    case["lr"] = STEP_LR
    return case


def _step_run(impl, case):
    """Build the model, set W0, b0, call step once: ('ok', (loss, params)) or ('err', Diagnosis)."""
    lr, (W0, b0) = case["lr"], case["points"][0][1:]
    D, K = W0.shape

    def run():
        model = call(f"LogisticRegression({D}, {K}, {lr})", lambda: impl(D, K, lr))
        call("setting model.params", lambda: setattr(model, "params", {"W": W0.copy(), "b": b0.copy()}))
        loss = call("step", lambda: model.step(case["Xs"], case["Ys"]))
        return snapshot((loss, call("reading model.params", lambda: model.params)))
    return timed(case, run)


def _step_loss(r, after, X, W0, b0, Y):
    """Rel. error of the returned loss against the loss before the update, or raise Reason naming the mistake."""
    if r[0] == "err":
        raise Reason(r[1])
    got = float_scalar(r[1][0], "the loss returned by step")
    want = nll(X, W0, b0, Y)
    if abs(got - want) <= TOL * max(abs(got) + abs(want), 1e-12):
        return abs(got - want) / max(abs(got) + abs(want), 1e-12)
    try:
        new = nll(X, after("W"), after("b"), Y)
    except Reason:
        new = np.nan
    if abs(got - new) <= DIAG_TOL * abs(new):
        fail("loss_after_update", rec.LOSS_AFTER_UPDATE, near=True, got=got, want=want)
    named = [p for value, p in n_factors(X.shape[0])[1:] if want and abs(got / want - value) <= 1e-3 * value]
    if named:
        fail("wrong_loss_named", named[0].code, near=True, got=got, want=want, mistake=named[0])
    fail("wrong_loss", rec.WRONG_LOSS, got=got, want=want)


def _step_factors(p, lr):
    return [(0.0, phrase("not_updated", rec.NOT_UPDATED, name=p)),
            (-1.0, phrase("update_sign_flipped", rec.SIGN_FLIPPED)),
            (1.0 / lr, phrase("lr_whole_gradient", rec.LR_IGNORED)),
            (1e-2 / lr, phrase("lr_default", rec.LR_IGNORED))]


def _moved(p, lr):
    """The worst entry of an update: how much it changed, and by how much it should have."""
    return lambda idx, got, e, err: phrase("worst_change", label=p, index=idx, got=-lr * got + 0.0,
                                           expected=-lr * e + 0.0, rel=err)


def run_step(impl, case):
    X, Y, lr, seed = case["X"], case["Y"], case["lr"], case["seed"]
    W0, b0 = case["points"][0][1], case["points"][0][2]
    N = X.shape[0]
    case = dict(case, Xs=X.copy(), Ys=Y.copy())
    r = _step_run(impl, case)
    targets = dict(zip("Wb", _nll_targets(X, W0, b0, Y, seed, case)))
    before = {"W": W0, "b": b0}

    def after(p):
        if r[0] == "err":
            raise Reason(r[1])
        params = r[1][1]
        if type(params) is not dict:
            fail("params_not_dict", rec.WRONG_TYPE, type=tname(params))
        if p not in params:
            fail("params_missing", rec.MISSING_PARAM, name=p)
        a = float_array(params[p], f"params['{p}']", before[p].shape, like=p)
        if a.shape != before[p].shape:
            fail("params_shape", rec.WRONG_SHAPE, name=p, shape=a.shape, want=before[p].shape)
        return a

    def param_check(p):
        # The update implies a gradient (before - after) / lr; it must be the FD gradient.
        implied = (before[p] - after(p)) / lr
        return compare(f"{p} update", implied, targets[p], (), _step_factors(p, lr) + n_factors(N)[1:],
                       entry=_moved(p, lr))

    status = {}

    def loss_check():
        err = _step_loss(r, after, X, W0, b0, Y)
        require_work({p: status[p] for p in "Wb"}, "what_loss")
        return err

    def inputs_check():
        after("W"), after("b")   # step must have run and left usable params
        bad = changed([("X", case["Xs"], X), ("Y", case["Ys"], Y)])
        if bad:
            fail("modified_input_short", rec.INPUT_MODIFIED, name=bad)
        require_work(status)

    res = {"W update": guard(lambda: graded(status, "W", lambda: param_check("W"))),
           "b update": guard(lambda: graded(status, "b", lambda: param_check("b")))}
    res["loss before update"] = guard(lambda: graded(status, "loss", loss_check))
    return {"loss before update": res["loss before update"], "W update": res["W update"],
            "b update": res["b update"], "inputs unchanged": guard(inputs_check)}

