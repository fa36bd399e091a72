"""Where one submission's time goes, as bench_class.py prints it: the phases that benchmarks/timed_autograde.py
timed for stock nbgrader (s) and the bundle (a), side by side."""


def breakdown_rows(phases):
    """(label, seconds) rows of one submission's breakdown; the rests are what no stopwatch saw."""
    steps = {k: v for k, v in phases.items() if k.startswith(("sanitize: ", "autograde: "))}
    execute = phases.get("execute step", 0.0)
    inside = ("kernel start", "ordinary cells in the kernel", "test cells in the kernel", "kernel stop")
    rows = [(f"  {name}", phases.get(name, 0.0)) for name in inside]
    rows.append(("  rest of the execute step ((a): test cells in the grader, scratch, ...)",
                 execute - sum(phases.get(name, 0.0) for name in inside)))
    rows = [("execute step", execute), *rows,
            ("sanitize pass (nbgrader's and the bundle's steps)",
             sum(v for k, v in steps.items() if k.startswith("sanitize: "))),
            ("autograde pass, steps other than execute", sum(v for k, v in steps.items()
                                                              if k.startswith("autograde: "))),
            ("init_assignment (copy, gradebook)", phases.get("init_assignment", 0.0))]
    accounted = execute + sum(steps.values()) + phases.get("init_assignment", 0.0)
    rows += [("rest of nbgrader's pipeline (read/write notebooks, hooks, gradebook)",
              phases["submission"] - accounted),
             ("one submission in all", phases["submission"]),
             ("+ once per run, shared out (process start, imports, config)", phases["once per run"])]
    return rows


def print_breakdown(stock, bundle, students):
    print(f"\nwhere one submission's time goes (seconds; the middle of {students} graded by one process,"
          " benchmarks/timed_autograde.py):")
    print(f"  {'':<78} {'(s)':>7} {'(a)':>7}")
    for (label, s), (_, a) in zip(breakdown_rows(stock), breakdown_rows(bundle)):
        print(f"  {label:<78} {s:7.3f} {a:7.3f}")
    for name, phases in (("(s)", stock), ("(a)", bundle)):
        steps = sorted(((v, k) for k, v in phases.items() if k.startswith(("sanitize: ", "autograde: "))),
                       reverse=True)
        print(f"  {name} slowest steps other than execute: " + ", ".join(f"{k} {v:.3f}" for v, k in steps[:4]))
