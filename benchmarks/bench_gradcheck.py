"""Measure gradcheck on the reference solutions: false failures, errors, speed.

    .venv/bin/python benchmarks/bench_gradcheck.py [--trials 10000]

A trial is one random case (ITEMS[item].random(rng)): random seed, random shapes
with no two dimensions equal, random scales. For every comparison of a gradient
with its finite-difference value it records

* the graded relative error (what is compared with TOL),
* the same error with the noise term of the floor left out (floor = FLOOR * max|e|
  only): this is what the floor for near-zero entries protects against,
* |a - e| in units of the FD resolution eps_machine * sum|f(x) * d_out| / EPS
  (compare with NOISE_ULPS),

and the time of one grade() call (default seeds, output discarded).
"""
import argparse
import contextlib
import io
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "source", "ex09_backprop")]

import gradcheck  # noqa: E402
import gradcheck_engine as engine  # noqa: E402
from grading.fixtures import reference_solutions  # noqa: E402

STATS = {}


def record(c):
    """engine.observe callback: the worst no-noise error and |a - e| in noise units over every comparison."""
    diff = np.abs(c.got - c.expected)
    pure = diff / np.maximum(np.abs(c.got) + np.abs(c.expected), engine.FLOOR * np.abs(c.expected).max() + 1e-300)
    STATS["pure"] = max(STATS.get("pure", 0.0), float(pure.max()))
    unit = c.noise / engine.NOISE_ULPS
    STATS["ulps"] = max(STATS.get("ulps", 0.0), float(diff.max() / unit) if unit > 0 else 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10000)
    parser.add_argument("--grade-repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"gradcheck: TOL={engine.TOL:g} FLOOR={engine.FLOOR:g} NOISE_ULPS={engine.NOISE_ULPS} "
          f"EPS={engine.EPS:g} MAX_ENTRYWISE={engine.MAX_ENTRYWISE} trials/item={args.trials}")
    print(f"{'item':<25} {'false fail':>10} {'max err':>9} {'/TOL':>7} {'no-noise err':>12} "
          f"{'max |a-e| ulps':>14} {'ms/trial':>8} {'ms/grade':>8}")
    for item, impl in reference_solutions.IMPLS.items():
        spec, fails, worst, bad_subs = engine.ITEMS[item], 0, 0.0, {}
        STATS.clear()
        t0 = time.perf_counter()
        for s in range(args.trials):
            with engine.observe(record):
                res = engine.run_checks(item, impl, cases=[spec.random(np.random.default_rng([2024, s]))])
            lost = [name for name, r in res.items() if not r.passed]
            if lost:
                fails += 1
                for name in lost:
                    bad_subs.setdefault(name, (s, res[name].code))
            worst = max([worst] + [r.max_rel_error for r in res.values() if r.max_rel_error is not None])
        per_trial = (time.perf_counter() - t0) / args.trials
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            for _ in range(args.grade_repeats):
                gradcheck.grade(item, impl)
        per_grade = (time.perf_counter() - t0) / args.grade_repeats
        print(f"{item:<25} {fails:>10d} {worst:>9.1e} {worst / engine.TOL:>7.1e} "
              f"{STATS.get('pure', 0):>12.1e} {STATS.get('ulps', 0):>14.2f} "
              f"{1e3 * per_trial:>8.2f} {1e3 * per_grade:>8.1f}")
        for name, (s, reason) in bad_subs.items():
            print(f"    first failure of {name!r}: trial {s}: {reason}")


if __name__ == "__main__":
    main()
