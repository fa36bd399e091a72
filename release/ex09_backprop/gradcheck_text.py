"""Every word the checker says about a result, in one place: diagnoses, grade() lines, self-check lines and
check_all's table are rendered here from the records of gradcheck_records.py.

Rewording a template changes what students read, never a mistake code or a class report.
"""
from gradcheck_records import Diagnosis

TEMPLATES = {
    # Waiting for another sub-check, not attempted, could not be checked
    "not_counted": "not counted yet: {what}",
    "what_work": "no value is right or off by a named mistake",
    "what_loss": "the loss comes from the given code; it counts once W or b is updated",
    "not_checked_latest": "not checked yet: no gradient is right after a single forward call",
    "not_implemented": "not implemented yet (NotImplementedError)",
    "check_failed": "could not be checked ({name})",
    "unreadable": "the returned value could not be read ({name})",
    # Calls into the answer
    "raised": "{what} raised {name}",
    "raised_message": "{what} raised {name}: {message}",
    "too_slow": "too slow on the large case ({case}): {seconds:.0f} s, limit {limit:g} s; backpropagation takes "
                "milliseconds there, one forward call per entry cannot finish",
    "too_slow_failed": "too slow on the large case ({case}): {seconds:.0f} s, limit {limit:g} s; backpropagation "
                       "takes milliseconds there, one forward call per entry cannot finish ({cause})",
    "large_layer": "{inputs} of shape {shape}",
    "large_model": "X of shape ({N}, {D}), {K} classes",
    # What came back
    "returned_none": "{what} returned None (missing return?)",
    "returned_none_tuple": "{what} returned None (missing return?); expected a tuple ({names})",
    "not_tuple": "{what} returned type {type}, expected a tuple ({names})",
    "wrong_count": "{what} returned {count} values, expected {want} ({names})",
    "is_none": "{label} is None (missing return value?)",
    "scalar_none": "{label} is None (missing return?)",
    "not_an_array": "{label} must be an array shaped like {like} {shape}; got {kind}",
    "not_an_array_sum": "{label} must be an array shaped like {like} {shape}; got {kind} — did you sum?",
    "kind_float": "a float",
    "kind_int": "an int",
    "kind_bool": "a bool",
    "kind_numpy": "a numpy {type}",
    "kind_0d": "a 0-d array",
    "not_ndarray": "{label} has type {type}, expected a numpy array (np.ndarray)",
    "ndarray_subclass": "{label} has type {type} (a subclass; use np.asarray), expected a numpy array (np.ndarray)",
    "not_float_dtype": "{label} has dtype {dtype}, expected float64",
    "not_float64": "{label} has dtype {dtype}, expected float64 (float64 in, float64 out)",
    "not_float": "{label} has type {type}, expected a float",
    "scalar_not_finite": "{label} is {value}",
    "wrong_shape": "{label} has shape {shape}, expected {want}",
    "shape_swapped": "{label} has shape {shape}, expected {want}: outputs in the wrong order? return ({names})",
    "shape_transposed": "{label} has shape {shape}, expected {want} (transposed?)",
    "shape_wrong_axis": "{label} has shape {shape}, expected {want} (summed over the wrong axis? d_b has one "
                        "entry per class)",
    "is_transposed": "{label} is transposed: shape {shape}, expected {want}",
    "modified_input": "modified its input {name} in place (work on a copy, or build new arrays)",
    "modified_input_short": "modified its input {name} in place",
    # Gradients compared with the expected ones (the reference's, or finite differences)
    "contains_nan": "{label} contains NaN or inf",
    "named_shape": "{label}: {mistake}",
    "named": "{label}: {mistake}; {where}",
    "wrong_values": "{label} is wrong; {where}",
    "worst_entry": "worst {label}[{at}]: got {got:.4g}, expected {expected:.4g} (rel. error {rel:.2g})",
    "worst_change": "worst {label}[{at}]: changed by {got:.4g}, expected {expected:.4g} (rel. error {rel:.2g})",
    "worst_direction": "along a random direction v: <{label}, v> = {got:.4g}, finite differences give "
                       "{expected:.4g} (rel. error {rel:.2g})",
    "right_only_at_w0": "right only at W = 0; at random W, b: {cause}",
    # Named mistakes (the phrase after "d_W: ")
    "sign_flipped": "sign flipped",
    "missing_1_over_n": "missing 1/N (off by a factor N = {N})",
    "extra_1_over_n": "extra 1/N (off by a factor 1/N, N = {N})",
    "all_zeros": "is all zeros",
    "constant_factor": "off by a constant factor {c:.3g}",
    "stale_cache": "stale cache: matches the inputs of the FIRST forward call; backward must use the latest",
    "outputs_swapped": "outputs swapped ({label} is the gradient w.r.t. {other})",
    "outputs_swapped_return": "outputs swapped: return ({names})",
    "d_out_ignored": "d_out ignored (matches the gradient for d_out = 1)",
    "not_updated": "{name} was not updated",
    "update_sign_flipped": "update sign flipped: use params[p] - learning_rate * grads[p]",
    "lr_whole_gradient": "learning rate ignored (stepped by the whole gradient)",
    "lr_default": "learning rate ignored: used 1e-2, not the learning_rate given",
    # LogisticRegression.step
    "params_not_dict": "model.params has type {type} after step, expected a dict",
    "params_missing": "model.params has no '{name}' after step",
    "params_shape": "params['{name}'] has shape {shape} after step, expected {want}",
    "loss_after_update": "loss returned after the update instead of before ({got:.6g}; before it was {want:.6g})",
    "wrong_loss": "returned loss {got:.6g}, expected {want:.6g} (the loss before the update)",
    "wrong_loss_named": "returned loss {got:.6g}, expected {want:.6g} (the loss before the update): {mistake}",
    # grade(), self_check(), check_all()
    "grade_header": "{item}: {earned:g} / {total:g} points",
    "grade_line": "  {mark} {check:<18} {earned:.3g}/{possible:.3g}  {detail}",
    "max_error": "max rel. error {err}",
    "max_error_reference": "max rel. error {err} against the reference gradient",
    "public_pass": "matches numerical gradients, max rel. error {err}",
    "self_check_pass": "{mark} {item} {text}",
    "self_check_fail": "{mark} {item}: {text}",
    "grade_hint": 'every sub-check and its points: gradcheck.grade("{item}", {name})',
    "not_defined": "{name} is not defined: run its cell (and fix any error it shows)",
    "unknown_item": "unknown item (one of {items})",
    "summary_header": "Self-checks on public examples (the grader checks more cases). Every sub-check of an item: "
                      'gradcheck.grade(item, answer), e.g. gradcheck.grade("Sum.backward", Sum)',
    "summary_row": "{mark} {item:<24} {points:>9}  {text}",
    "summary_footer": "Public checks: {earned:g}/{possible:g} points",
    "points": "{earned:g}/{possible:g}",
    "pass_mark": "✓",
    "fail_mark": "✗",
}


def say(template, **params):
    """One template filled in (a Diagnosis among the params is rendered first)."""
    return TEMPLATES[template].format(**{k: render(v) if isinstance(v, Diagnosis) else v for k, v in params.items()})


def render(diagnosis):
    """A Diagnosis as the one line a student reads."""
    params = dict(diagnosis.params)
    if "index" in params:
        params["at"] = ", ".join(str(int(i)) for i in params.pop("index"))
    return say(diagnosis.template, **params)


def fmt_err(err):
    return "0" if err == 0 else f"{err:.0e}"


def mark(passed):
    return say("pass_mark" if passed else "fail_mark")


def grade_text(item, total, results, reference=False):
    """What gradcheck.grade prints: a header, then one line per sub-check (CheckResult, in order).
    ``reference``: the gradients were compared with the reference backward's (the grader), not numerical ones."""
    earned = float(sum(r.earned for r in results))
    max_error = "max_error_reference" if reference else "max_error"
    lines = [say("grade_header", item=item, earned=earned, total=total)]
    for r in results:
        detail = (render(r.diagnosis) if not r.passed and r.diagnosis else ""
                  if r.max_rel_error is None else say(max_error, err=fmt_err(r.max_rel_error)))
        lines.append(say("grade_line", mark=mark(r.passed), check=r.check, earned=r.earned, possible=r.possible,
                         detail=detail).rstrip())
    return "\n".join(lines)


def self_check_line(item, passed, text):
    return say("self_check_pass" if passed else "self_check_fail", mark=mark(passed), item=item, text=text)


def summary(rows):
    """check_all's table as (header, text lines, footer); rows of (passed, item, earned, possible, text)."""
    earned, possible = sum(row[2] for row in rows), sum(row[3] for row in rows)
    lines = [say("summary_row", mark=mark(ok), item=item, points=say("points", earned=got, possible=pts), text=text)
             for ok, item, got, pts, text in rows]
    return say("summary_header"), lines, say("summary_footer", earned=earned, possible=possible)
