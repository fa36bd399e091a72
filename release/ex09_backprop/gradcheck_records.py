"""What a check found, as data: every sub-check outcome is a :class:`CheckResult`, every diagnosis a
:class:`Diagnosis` with a stable mistake code. Text for students is rendered from them in gradcheck_text.py
(and only there), so rewording a message changes no code and no class report.

The grader stores each test cell's records in the autograded notebook (``cell.metadata.grading.checks``, see
:func:`recording`); the class report counts mistakes by their code.
"""
import contextlib
from dataclasses import dataclass, field

# Outcomes that are no mistake of their own.
PASSED = "passed"
NOT_COUNTED = "not_counted_yet"        # waits for another sub-check (a stub earns nothing)
NOT_IMPLEMENTED = "not_implemented"    # the answer still raises NotImplementedError

# Named mistakes: stable codes, never reworded (the report's labels are keyed by them).
TOO_SLOW = "too_slow"
RAISED = "raised"
RIGHT_ONLY_AT_W0 = "right_only_at_w0"
STALE_CACHE = "stale_cache"
OUTPUTS_SWAPPED = "outputs_swapped"
D_OUT_IGNORED = "d_out_ignored"
MISSING_1_OVER_N = "missing_1_over_n"
EXTRA_1_OVER_N = "extra_1_over_n"
SIGN_FLIPPED = "sign_flipped"
TRANSPOSED = "transposed"
WRONG_AXIS = "wrong_axis"
LR_IGNORED = "learning_rate_ignored"
NOT_UPDATED = "not_updated"
LOSS_AFTER_UPDATE = "loss_after_update"
INPUT_MODIFIED = "input_modified"
RETURNED_NONE = "returned_none"
NOT_AN_ARRAY = "not_an_array"
WRONG_TYPE = "wrong_type"
WRONG_DTYPE = "wrong_dtype"
WRONG_SHAPE = "wrong_shape"
NOT_FINITE = "not_finite"
CONSTANT_FACTOR = "constant_factor"
ALL_ZEROS = "all_zeros"
WRONG_VALUES = "wrong_values"
# Failures the checker cannot name as a mistake.
WRONG_LOSS = "wrong_loss"
MISSING_PARAM = "missing_param"
UNREADABLE = "unreadable_value"
CHECK_FAILED = "check_failed"


@dataclass(frozen=True)
class Diagnosis:
    """Why a sub-check failed (or a phrase inside such a reason): ``template`` names its wording in
    gradcheck_text.TEMPLATES, ``params`` fill it in (a Diagnosis among them is rendered first), ``code`` is the
    mistake. ``worst``, ``got``, ``expected``: the worst entry's index (or None along a random direction) and both
    values there, for value mistakes."""
    template: str
    code: str
    params: dict = field(default_factory=dict)
    worst: tuple = None
    got: float = None
    expected: float = None


@dataclass(frozen=True)
class CheckResult:
    """One sub-check of one item over every case: it earns its points only if it passed on all of them;
    ``diagnosis`` is the one from the first case where it failed."""
    item: str
    check: str
    earned: float
    possible: float
    diagnosis: Diagnosis = None
    max_rel_error: float = None     # over the cases, for gradient and loss comparisons

    @property
    def passed(self):
        return self.earned == self.possible

    @property
    def code(self):
        return PASSED if self.diagnosis is None else self.diagnosis.code

    def to_json(self):
        """What the grader stores per sub-check: plain JSON, no student text."""
        d = self.diagnosis
        out = {"item": self.item, "check": self.check, "earned": float(self.earned),
               "possible": float(self.possible), "code": self.code, "max_rel_error": _num(self.max_rel_error)}
        if d is not None and d.worst is not None:
            out["worst"] = [int(i) for i in d.worst]
        if d is not None and d.got is not None:
            out["got"], out["expected"] = _num(d.got), _num(d.expected)
        return out


def _num(x):
    """A float JSON can hold (nan and inf become strings), or None."""
    if x is None:
        return None
    x = float(x)
    return x if x == x and abs(x) != float("inf") else repr(x)


_recorders = []


@contextlib.contextmanager
def recording(callback):
    """While the block runs, call ``callback([CheckResult, ...])`` with every graded item's results (one call
    per ``gradcheck.grade``). The grader's test-cell runner stores them in the test cell's metadata."""
    _recorders.append(callback)
    try:
        yield
    finally:
        _recorders.remove(callback)


def publish(results):
    """Hand one grade call's results (in sub-check order) to every recorder."""
    for callback in list(_recorders):
        callback(list(results))
