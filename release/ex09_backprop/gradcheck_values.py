"""Talking to the answer: every call guarded, every returned value validated. A failure is a :class:`Reason`
carrying a Diagnosis (gradcheck_records.py); its words are in gradcheck_text.py."""
import time

import numpy as np

import gradcheck_records as rec
from gradcheck_records import Diagnosis

class Reason(Exception):
    """A diagnosis that fails the current sub-check. ``near``: the value is off by a mistake the checker can
    name (sign, factor, swapped, ...), i.e. real work."""

    def __init__(self, diagnosis, near=False):
        super().__init__(diagnosis.template)
        self.diagnosis, self.near = diagnosis, near


def fail(template, code, near=False, **params):
    """Raise a Reason: the template's wording (gradcheck_text.TEMPLATES) with ``params``, and a mistake code."""
    raise Reason(Diagnosis(template, code, params), near)


def phrase(template, code=rec.WRONG_VALUES, **params):
    """A piece of a diagnosis (a named mistake, a case's size) rendered inside another."""
    return Diagnosis(template, code, params)


def graded(status, key, check):
    """Run a value check; record in status[key] whether it was right, near or wrong."""
    status[key] = "wrong"
    try:
        result = check()
    except Reason as r:
        status[key] = "near" if r.near else "wrong"
        raise
    status[key] = "right"
    return result


def require_work(status, what="what_work"):
    """Format, hygiene and given-code points count only once a value is right or nearly right,
    so that a stub returning zeros (or anything of the right shape) earns nothing."""
    if not any(v in ("right", "near") for v in status.values()):
        fail("not_counted", rec.NOT_COUNTED, what=phrase(what, rec.NOT_COUNTED))


def describe(what, e):
    """'<what> raised ValueError: message' on one line: never a traceback."""
    if isinstance(e, NotImplementedError):
        return Diagnosis("not_implemented", rec.NOT_IMPLEMENTED)
    try:   # through the grader's remote proxy the type arrives as remote_type
        # One line, always: a type name is student text too.
        name = " ".join(str(getattr(e, "remote_type", "") or type(e).__name__).split())[:80]
        msg = " ".join(str(e).split())
        msg = msg[len(name) + 2:] if msg.startswith(name + ": ") else msg
    except Exception:
        name, msg = type(e).__name__, ""
    if msg:
        return Diagnosis("raised_message", rec.RAISED, {"what": what, "name": name, "message": msg[:160]})
    return Diagnosis("raised", rec.RAISED, {"what": what, "name": name})


def call(what, fn):
    """Run student code; report an exception as its type and message only."""
    try:
        return fn()
    except (Exception, SystemExit) as e:   # sys.exit() in student code must not end grading
        raise Reason(describe(what, e)) from None


def attempt(fn):
    """('ok', value) or ('err', Diagnosis): the run happens once, sub-checks read it."""
    try:
        return ("ok", fn())
    except Reason as r:
        return ("err", r.diagnosis)
    except Exception as e:   # e.g. a result that cannot be copied (self-containing list)
        return ("err", Diagnosis("unreadable", rec.UNREADABLE, {"name": type(e).__name__}))


def timed(case, fn):
    """attempt(fn); on the large case, a run over its time limit (``case["limit"]``: the engine's LARGE_SECONDS)
    fails as too slow, whatever it returned (the grader's call timeout may stop it first: the reason then says
    so too)."""
    start = time.monotonic()
    r = attempt(fn)
    seconds = time.monotonic() - start
    if "large" not in case or seconds <= case["limit"]:
        return r
    params = {"case": case["large"], "seconds": seconds, "limit": case["limit"]}
    if r[0] == "err":
        return ("err", Diagnosis("too_slow_failed", rec.TOO_SLOW, dict(params, cause=r[1])))
    return ("err", Diagnosis("too_slow", rec.TOO_SLOW, params))


def tname(v):
    return "None" if v is None else type(v).__name__


def snapshot(v):
    """Copy returned arrays at once, so no later call can change what gets graded."""
    if type(v) is np.ndarray:
        return v.copy()
    if type(v) in (tuple, list):
        return type(v)(snapshot(u) for u in v)
    if type(v) is dict:
        return {k: snapshot(u) for k, u in v.items()}
    return v


def scalar_kind(v):
    """The phrase for a scalar ('a float', 'a numpy float64', ...), or None when v is no scalar."""
    if type(v) is float:
        return phrase("kind_float")
    if type(v) in (int, bool):
        return phrase("kind_int" if type(v) is int else "kind_bool")
    if isinstance(v, np.generic):
        return phrase("kind_numpy", type=type(v).__name__)
    if type(v) is np.ndarray and v.ndim == 0:
        return phrase("kind_0d")
    return None


def float_array(v, label, shape=None, like=None):
    """Validate one returned array: a float64 copy, or raise Reason. With ``shape`` (the expected shape),
    a scalar gets "must be an array shaped like <like> <shape>"; ``like`` defaults to label without "d_"."""
    if v is None:
        fail("is_none", rec.RETURNED_NONE, label=label)
    kind = scalar_kind(v) if shape is not None and shape != () else None
    if kind:   # a gradient that became a number: usually a sum too many
        fail("not_an_array_sum" if label.startswith("d_") else "not_an_array", rec.NOT_AN_ARRAY, label=label,
             like=like or label[2:], shape=shape, kind=kind)
    if type(v) is not np.ndarray:   # exact type: subclasses and look-alikes are refused
        fail("ndarray_subclass" if isinstance(v, np.ndarray) else "not_ndarray", rec.WRONG_TYPE, label=label,
             type=tname(v))
    if v.dtype.kind != "f":
        fail("not_float_dtype", rec.WRONG_DTYPE, label=label, dtype=str(v.dtype))
    return np.array(v, dtype=np.float64)    # private copy: later changes cannot reach it


_FLOAT_SCALARS = (float, np.float64, np.float32, np.float16, np.longdouble)


def float_scalar(v, label):
    """Validate a returned scalar (Python/numpy float or 0-d float array)."""
    if type(v) in _FLOAT_SCALARS or (type(v) is np.ndarray and v.shape == () and v.dtype.kind == "f"):
        if not np.isfinite(v):
            fail("scalar_not_finite", rec.NOT_FINITE, label=label, value=float(v))
        return float(v)
    if v is None:
        fail("scalar_none", rec.RETURNED_NONE, label=label)
    fail("not_float", rec.WRONG_TYPE, label=label, type=tname(v))


def unpack(ret, labels, what):
    """Split a returned tuple/list into len(labels) raw values (or raise Reason)."""
    if len(labels) == 1:
        if ret is None:
            fail("returned_none", rec.RETURNED_NONE, what=what)
        return [ret]
    names = ", ".join(labels)
    if ret is None:
        fail("returned_none_tuple", rec.RETURNED_NONE, what=what, names=names)
    if type(ret) not in (tuple, list):
        fail("not_tuple", rec.WRONG_TYPE, what=what, type=tname(ret), names=names)
    if len(ret) != len(labels):
        fail("wrong_count", rec.WRONG_SHAPE, what=what, count=len(ret), want=len(labels), names=names)
    return list(ret)


def strict(values, labels, shapes):
    """The 'outputs' sub-check: plain float64 arrays of the right shapes, in order."""
    got = [float_array(v, lab, shape) for v, lab, shape in zip(values, labels, shapes)]
    for v, a, lab, shape in zip(values, got, labels, shapes):
        if a.shape != shape:
            if len(shapes) > 1 and [g.shape for g in got] == shapes[::-1]:
                fail("shape_swapped", rec.OUTPUTS_SWAPPED, label=lab, shape=a.shape, want=shape,
                     names=", ".join(labels))
            if a.ndim == 2 and a.shape == shape[::-1]:
                fail("shape_transposed", rec.TRANSPOSED, label=lab, shape=a.shape, want=shape)
            fail("wrong_shape", rec.WRONG_SHAPE, label=lab, shape=a.shape, want=shape)
        if v.dtype != np.float64:
            fail("not_float64", rec.WRONG_DTYPE, label=lab, dtype=str(v.dtype))


def changed(pairs):
    """Label of the first array whose contents (or shape/dtype) changed, else None."""
    for label, sent, orig in pairs:
        if sent.shape != orig.shape or sent.dtype != orig.dtype or not np.array_equal(sent, orig):
            return label
    return None


def guard(fn):
    """Run one sub-check: (ok, Diagnosis or None, max rel. error or None). Failure costs only it."""
    try:
        return True, None, fn()
    except Reason as r:
        return False, r.diagnosis, None
    except Exception as e:   # a checker problem must not crash the grading
        return False, Diagnosis("check_failed", rec.CHECK_FAILED, {"name": type(e).__name__}), None


def values_of(r, labels, what):
    """The returned values of a run (attempt's result), or raise its diagnosis."""
    if r[0] == "err":
        raise Reason(r[1])
    return unpack(r[1], labels, what)
