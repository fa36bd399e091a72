"""Backprop, not numerics (fast, in-process): the checker's large cases, the per-submission salt of the hidden seeds,
and the source analysis that flags numerical elementwise answers. tests/test_numerics_autograde.py runs the same
through the real nbgrader pipeline.

* every item has one large case (half a million entries or more, each reply at most 8 MB) that a correct answer passes
  quickly and a slow one fails as "too slow on the large case", costing exactly what a failed case costs;
* every catalogued bug keeps its exact points and diagnosis with the large case and salted seeds;
* the numerically differentiating answers of grading/fixtures/numerics_catalog.py are right on every small case;
* SEED_SALT changes every graded case and no public one; without it the cases are today's;
* the course secret, the salt of a submission, and the TrustedModules hook that hands it to the engine;
* FlagNumericalBackward's analysis: the catalogued numerical answers are flagged with their note, the reference
  answers and all 46 catalogued bugs are not.
"""
import contextlib
import io
import os
import re
import stat
import sys
import time

import nbformat
import numpy as np
import pytest
from conftest import REPO
from nbformat.v4 import new_code_cell, new_notebook
from traitlets import TraitError

from grading.fixtures import reference_solutions as ref
from grading.fixtures.bug_catalog import BUGS
from grading.fixtures.numerics_catalog import ANSWERS
from grading.plugins.numerics_review import FlagNumericalBackward
from grading.trusted.modules import TrustedModules
from grading.trusted.seed_salt import SeedSalt, submission_digest

SOURCE = REPO / "source" / "ex09_backprop"
if str(SOURCE) not in sys.path:
    sys.path.insert(0, str(SOURCE))

import gradcheck  # noqa: E402
import gradcheck_engine as engine  # noqa: E402
from test_gradcheck import NOTEBOOK_TESTS, answer_cells, run_grade  # noqa: E402

ITEMS = list(engine.ITEMS)
SALT = 0x5EED_5A17_0123_4567_89AB_CDEF_0011_2233


@pytest.fixture
def salted(monkeypatch):
    monkeypatch.setattr(engine, "SEED_SALT", SALT)


# ------------------------------------------------------------------ the large cases

@pytest.mark.parametrize("item", ITEMS)
def test_one_large_case_per_item_last_and_cheap_for_backprop(item):
    seeds = NOTEBOOK_TESTS[item][1]
    cases = engine.ITEMS[item].cases(seeds, large=True)
    assert len(cases) == len(engine.ITEMS[item].cases(seeds)) + 1
    large = cases[-1]
    assert "large" in large and not any("large" in c for c in cases[:-1])
    arrays = large["inputs"] if "inputs" in large else [large["X"], *large["points"][0][1:]]
    assert max(a.size for a in arrays) >= 500_000         # a forward call per entry cannot finish
    assert max(a.nbytes for a in arrays) <= 8 << 20                                # each reply under 16 MiB
    start = time.monotonic()
    points, out = run_grade(item, ref.IMPLS[item], seeds=seeds[:1], large=True)
    assert points == engine.ITEMS[item].total, out
    assert time.monotonic() - start < engine.LARGE_SECONDS / 2


def test_a_slow_answer_fails_only_the_large_case_as_too_slow(monkeypatch):
    monkeypatch.setattr(engine, "LARGE_SECONDS", 0.2)
    calls = []

    def nll_grad(X, W, b, Y):
        calls.append(X.shape)
        if X.size > 100_000:
            time.sleep(0.3)
        return ref.nll_grad(X, W, b, Y)
    seeds = NOTEBOOK_TESTS["nll_grad"][1]
    assert run_grade("nll_grad", nll_grad, seeds=seeds)[0] == 3.0      # right on every small case
    calls.clear()
    points, out = run_grade("nll_grad", nll_grad, seeds=seeds, large=True)
    assert points == 0.0
    assert re.search(r"too slow on the large case \(X of shape \(1200, 800\), 30 classes\): \d+ s, limit 0.2 s", out)
    assert sum(shape == (1200, 800) for shape in calls) == 1    # once too slow, not called again (W = 0 point)

    class DotProduct(ref.DotProduct):
        def backward(self, d_out):
            if self.cache[0].size > 100_000:
                time.sleep(0.3)
            return super().backward(d_out)
    points, out = run_grade("DotProduct.backward", DotProduct, seeds=(1,), large=True)
    assert points == 0.0 and "✗ d_x" in out and "too slow on the large case (x, y of shape (500000,))" in out


@pytest.mark.parametrize("bug", BUGS, ids=lambda bug: bug.name)
def test_every_catalogued_bug_keeps_its_points_with_the_large_case_and_salted_seeds(bug, salted):
    points, out = run_grade(bug.item, answer_cells(bug)[bug.item], seeds=NOTEBOOK_TESTS[bug.item][1], large=True)
    assert points == bug.expected_points, out
    if bug.diagnosis is not None:
        assert bug.diagnosis in out, out


@pytest.mark.parametrize("answer", ANSWERS, ids=lambda a: a.name)
def test_numerical_answers_are_right_on_every_small_case(answer, salted):
    impl = ref.build(answer.source, engine.ITEMS[answer.item].impl_name)
    assert run_grade(answer.item, impl, seeds=NOTEBOOK_TESTS[answer.item][1])[0] == engine.ITEMS[answer.item].total
    if answer.flagged:    # one or two forward calls: fast enough for the large case too
        assert run_grade(answer.item, impl, seeds=(1,), large=True)[0] == answer.expected_points


# ------------------------------------------------------------------ salted seeds

def _first_input(case):
    return case["inputs"][0] if "inputs" in case else case["X"]


def _inputs(item, seeds=(11, 12)):
    return [_first_input(case) for case in engine.ITEMS[item].cases(seeds, large=True)]


@pytest.mark.parametrize("item", ITEMS)
def test_the_salt_changes_every_graded_case_and_no_public_one(item, monkeypatch):
    plain, public = _inputs(item), [_first_input(case) for case in engine.ITEMS[item].public()]
    today = engine.ITEMS[item].makers[0](np.random.default_rng([11, 0]))     # the stream before salts existed
    assert np.array_equal(plain[0], _first_input(today))
    monkeypatch.setattr(engine, "SEED_SALT", SALT)
    salted = _inputs(item)
    assert len(salted) == len(plain) and all(a.shape == b.shape and not np.array_equal(a, b)
                                             for a, b in zip(plain, salted))
    assert all(np.array_equal(a, b) for a, b in zip(salted, _inputs(item)))      # a re-run draws the same
    monkeypatch.setattr(engine, "SEED_SALT", SALT + 1)
    assert not any(np.array_equal(a, b) for a, b in zip(salted, _inputs(item)))
    assert all(np.array_equal(a, _first_input(b)) for a, b in zip(public, engine.ITEMS[item].public()))


def test_self_check_output_does_not_depend_on_the_salt(monkeypatch):
    bug = next(b for b in BUGS if b.name == "multiply_sign_flipped_d_y")
    impl = answer_cells(bug)["Multiply.backward"]

    def shown():
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            gradcheck.self_check("Multiply.backward", impl)
        return out.getvalue() + err.getvalue()
    plain, graded = shown(), run_grade("Multiply.backward", impl)[1]
    monkeypatch.setattr(engine, "SEED_SALT", SALT)
    assert shown() == plain
    assert run_grade("Multiply.backward", impl)[1] != graded    # the worst entry comes from other inputs


def _notebook(*sources):
    return new_notebook(cells=[new_code_cell(s) for s in sources])


def test_course_secret_is_created_once_owner_only_and_reused(tmp_path):
    seeds = SeedSalt()
    secret = seeds.secret(str(tmp_path))
    path = tmp_path / "seed_secret"
    assert len(secret) == 64 and path.read_bytes().strip() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SeedSalt().secret(str(tmp_path)) == secret and sorted(os.listdir(tmp_path)) == ["seed_secret"]
    other = tmp_path / "other"
    other.mkdir()
    assert SeedSalt().secret(str(other)) != secret                   # every course draws its own


def test_salt_is_the_same_for_the_same_cells_and_changes_with_one_byte(tmp_path):
    seeds = SeedSalt()
    nb = _notebook("x = 1  # answer", "print(x)")
    salt = seeds.salt(nb, str(tmp_path))
    assert salt == seeds.salt(nbformat.from_dict(nbformat.reads(nbformat.writes(nb), 4)), str(tmp_path))
    changed = _notebook("x = 1  # answes", "print(x)")
    assert seeds.salt(changed, str(tmp_path)) != salt
    assert submission_digest(changed) != submission_digest(nb)
    (tmp_path / "seed_secret").write_text("another course secret\n")
    assert seeds.salt(nb, str(tmp_path)) != salt                     # nothing without the secret predicts it
    assert 0 < salt < 2 ** 128


def test_salt_covers_every_file_that_reaches_the_sandbox_and_never_follows_a_link(tmp_path):
    """Issue 21.6: the same cells with one more (or one changed) file of the submission draw other inputs."""
    seeds, nb = SeedSalt(), _notebook("x = 1  # answer")
    sub = tmp_path / "sub"
    (sub / "data").mkdir(parents=True)
    (sub / "nn.py").write_text("released\n")
    (sub / "data" / "a.txt").write_text("a")
    salt = seeds.salt(nb, str(tmp_path), str(sub), "ex09")
    assert salt == seeds.salt(nb, str(tmp_path), str(sub), "ex09")
    (sub / "backprop.ipynb").write_text("{}")                       # notebooks count by the graded one's cells
    (sub / "__pycache__").mkdir()                                   # never copied into the sandbox
    assert seeds.salt(nb, str(tmp_path), str(sub), "ex09") == salt
    assert seeds.salt(nb, str(tmp_path), str(sub), "ex10") != salt   # the assignment
    (sub / "answers.npz").write_bytes(b"precomputed")
    with_file = seeds.salt(nb, str(tmp_path), str(sub), "ex09")
    assert with_file != salt
    (sub / "answers.npz").write_bytes(b"precomputes")
    assert seeds.salt(nb, str(tmp_path), str(sub), "ex09") not in (salt, with_file)
    (sub / "answers.npz").unlink()
    (sub / "data" / "a.txt").write_text("b")                         # any file, in any folder
    assert seeds.salt(nb, str(tmp_path), str(sub), "ex09") != salt
    (sub / "data" / "a.txt").write_text("a")
    (sub / "empty").mkdir()                                          # a folder reaches the sandbox too
    assert seeds.salt(nb, str(tmp_path), str(sub), "ex09") != salt
    (sub / "empty").rmdir()
    fifo, target = sub / "pipe", tmp_path / "target"
    os.mkfifo(fifo)                                                  # never opened (it would block)
    target.write_text("one")
    (sub / "link").symlink_to(target)                                # counted by name, never followed
    linked = seeds.salt(nb, str(tmp_path), str(sub), "ex09")
    target.write_text("two")
    assert seeds.salt(nb, str(tmp_path), str(sub), "ex09") == linked != salt


def test_secret_file_is_relative_and_never_a_link(tmp_path):
    with pytest.raises(TraitError):
        SeedSalt(secret_file="/etc/seed_secret")
    with pytest.raises(TraitError):
        SeedSalt(secret_file="../seed_secret")
    (tmp_path / "elsewhere").write_text("x" * 64)
    (tmp_path / "seed_secret").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        SeedSalt().secret(str(tmp_path))
    (tmp_path / "seed_secret").unlink()
    (tmp_path / "seed_secret").write_text("\n")
    with pytest.raises(ValueError, match="must be a regular file of 1 to"):
        SeedSalt().secret(str(tmp_path))


def test_trusted_modules_hand_the_salt_to_the_engine_copy_only():
    seeds = SeedSalt()
    modules = TrustedModules({"course_root": str(REPO), "source_directory": "source",
                              "assignment_id": "ex09_backprop"}, seeds.module_settings(SALT))
    trusted = modules.load("gradcheck_engine")
    assert trusted.SEED_SALT == SALT and trusted is not engine and engine.SEED_SALT is None
    assert TrustedModules({"course_root": str(REPO), "source_directory": "source",
                           "assignment_id": "ex09_backprop"}).load("gradcheck_engine").SEED_SALT is None


# ------------------------------------------------------------------ flagged for manual review

def signs(source, *others):
    return FlagNumericalBackward().numerical_signs(source, [source, *others])


@pytest.mark.parametrize("answer", [a for a in ANSWERS if a.flagged], ids=lambda a: a.name)
def test_catalogued_numerical_elementwise_answers_are_flagged(answer):
    assert answer.diagnosis in ", ".join(signs(answer.source))


def test_backprop_answers_are_never_flagged():
    for source in ref.SOURCES.values():
        assert signs(source) == [], source
    for bug in BUGS:
        assert signs(bug.source) == [], bug.name


def test_what_counts_as_numerical():
    backward = "class Sum:\n    def backward(self, d_out):\n        {}\n"
    assert signs(backward.format("return helper(self.cache)"), "def helper(x):\n    return np.gradient(x)") == \
        ["calls gradient"]                                             # a helper in another cell is read too
    assert signs(backward.format("return getattr(self, 'forward')(self.cache)")) == ["calls forward"]
    assert signs(backward.format("return self.cache.astype('complex128').real")) == ["uses complex numbers"]
    assert signs(backward.format("return gradcheck.numerical_gradient(np.sum, self.cache, d_out)")) == \
        ["calls numerical_gradient"]
    assert signs(backward.format("gradient = d_out * np.ones_like(self.cache); return gradient")) == []
    assert signs(backward.format("return d_out * np.ones_like(self.cache)"), "def forward(x):\n    return 1e-9") == []
    assert signs("class Sum:\n    backward = lambda self, d_out: self.forward(self.cache)") == ["calls forward"]
    assert signs("class Sum:\n    def backward(self, d_out:\n") == []          # a syntax error flags nothing
    assert signs("def forward(x):\n    return x * 1j") == []                     # only backward is read


def test_dynamic_access_to_forward_and_steps_written_as_expressions_are_flagged():
    """Issue 21.7: getattr(self, "for" + "ward") with h = 2.0 ** -20 passed unflagged."""
    backward = "class Sum:\n    def backward(self, d_out):\n        {}\n"
    issue = ('f = getattr(self, "for" + "ward"); h = 2.0 ** -20\n'
             '        return (f(self.cache + h) - f(self.cache)) / h * d_out')
    assert signs(backward.format(issue)) == ["calls forward", "uses a finite-difference step (9.53674e-07)"]
    assert signs(backward.format("return getattr(self, 'back' + 'ward')")) == []       # a name it can read
    assert signs(backward.format("return getattr(self, name)(self.cache)")) == [
        "reaches code by a name built at run time (getattr)"]
    assert signs(backward.format("return operator.attrgetter(''.join(['f', 'orward']))(self)")) == [
        "reaches code by a name built at run time (attrgetter)"]
    assert signs(backward.format("return eval(code)")) == ["reaches code by a name built at run time (eval)"]
    assert signs(backward.format("return type(self).__dict__[n](self, x)")) == [
        "reaches code by a name built at run time (__dict__)"]
    assert signs(backward.format("h = f'{1e-4}'; return x"))[0].startswith("uses a finite-difference step")
    for step in ("1 / 1e6", "10 ** -6", "-(1/2) ** 30", "2 ** -12"):
        assert signs(backward.format(f"h = {step}; return x")) == [
            f"uses a finite-difference step ({abs(eval(step)):g})"], step
    assert signs(backward.format("h = np.finfo(float).eps ** 0.5; return x")) == [
        "uses a finite-difference step (finfo)"]
    assert signs(backward.format("return d_out * 2 ** -1 * 2")) == []               # 0.5: not a step
    assert signs(backward.format("return x * 10 ** 10 ** 10")) == []                # folded with floats: no hang


def test_cells_over_the_budget_are_not_parsed_and_flag_both_answers(tmp_path):
    review = FlagNumericalBackward(max_cell_kb=4, max_notebook_kb=8)
    cells = ["x = 1", "y = [" + "1, " * 2000 + "]", "z = 2"]
    parsed, unread = review.parse_cells(_notebook(*cells))
    assert unread == ["code cell 1 is 6 KB (over 4 KB) and was not read"] and sorted(parsed) == [0, 2]
    many = _notebook(*["# " + "x" * 3000] * 4)
    assert review.parse_cells(many)[1] == ["the code cells are over 8 KB in all and cells 2 on were not read"]
    deep = _notebook("x = " + "-" * 200_000 + "1")
    assert FlagNumericalBackward(max_cell_kb=1024).parse_cells(deep)[1] in (
        [], ["code cell 0 nests too deep to be read"])
