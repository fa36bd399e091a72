"""Benchmark: what a pathological submission costs the grader's own process (issue 21, item 5).

    python benchmarks/bench_pathological.py [--code-mb 6] [--markup-kb 1024] [--depth 100000] [--repo DIR]

A fresh temporary course (from --repo, default this repository) gets four submissions: an honest one (every
answer the instructor's) and three that are honest too but add, each, what once cost the grader without bound:
  big-code-cell  a code cell of --code-mb MB (FlagNumericalBackward parsed every cell twice: 6 MB, 3.1 GB, 72 s);
  nested-markup  a markdown cell of --markup-kb KB of nested tags and a code cell displaying 512 KB of nested
                 HTML (bleach's cleaning is quadratic in the nesting: 384 KB took 239 s);
  deep-nesting   the notebook's JSON nested --depth deep (RecursionError stopped `make report`).
Each step runs through its real entry point, one student at a time where it can: plain `nbgrader autograde
--student S` (formgrader's autograde button runs the same converter), `nbgrader generate_feedback --student S`,
then `make report`'s `python -m grading.cli.report` for the class, and `make feedback`'s grading.cli.feedback.
Printed per step: wall-clock seconds, the peak RSS of the grader process itself (sampled every 20 ms with
psutil) and the peak RSS of any process it waited for (getrusage RUSAGE_CHILDREN: sandboxed kernels included),
the page's size, and each student's grade and report line. It exits non-zero when the honest student's grade or
report line differs from a class with nobody else, or a step failed.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for the grading package

from grading.course import ASSIGNMENT, COURSE_ID, NOTEBOOK  # noqa: E402
from grading.courses import sample_class  # noqa: E402
from grading.courses.course_dir import BIN, REPO, make_course  # noqa: E402
from grading.reporting import grades as report  # noqa: E402

HONEST = "honest"
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def measured(args, cwd, timeout=3600):
    """Run `args`; (seconds, peak RSS MB of that process, peak RSS MB of any waited-for descendant, returncode)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.monotonic()
    proc = subprocess.Popen(args, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watched, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            proc.kill()
    output = proc.stdout.read()
    seconds = time.monotonic() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode:
        print(output[-2000:])
    return seconds, peak / 2**20, (children if children > before else 0) / 1024, proc.returncode


def build(root, repo, code_mb, markup_kb, depth):
    course = make_course(root, repo)
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.DueDate.due_date = {sample_class.DUE_DATE.strftime('%Y-%m-%d %H:%M:%S UTC')!r}\n")
    subprocess.run([str(BIN / "nbgrader"), "generate_assignment", ASSIGNMENT, "--force"], cwd=course, env=ENV,
                   check=True, capture_output=True)
    release = course / "release" / ASSIGNMENT / NOTEBOOK
    honest = sample_class.student_notebook(release, sample_class.solution_sources(
        course / "source" / ASSIGNMENT / NOTEBOOK))
    line = "a = (1, 2, 3)\n"
    big = nbformat.from_dict(honest)
    big.cells.append(nbformat.v4.new_code_cell(line * (code_mb * 2**20 // len(line))))
    nested = nbformat.from_dict(honest)
    n = markup_kb * 1024 // 11
    nested.cells.append(nbformat.v4.new_markdown_cell("<div>" * n + "deep" + "</div>" * n))
    nested.cells.append(nbformat.v4.new_code_cell(
        "from IPython.display import HTML\nHTML('<span>' * (512 * 1024 // 6))"))
    text = nbformat.writes(honest)
    deep = text.replace('"metadata": {', '"metadata": {"deep": ' + "[" * depth + "]" * depth + ", ", 1)
    for student, content in ((HONEST, nbformat.writes(honest)), ("big-code-cell", nbformat.writes(big)),
                             ("nested-markup", nbformat.writes(nested)), ("deep-nesting", deep)):
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for path in release.parent.iterdir():
            if path.is_file() and path.suffix != ".ipynb":
                (folder / path.name).write_bytes(path.read_bytes())
        (folder / NOTEBOOK).write_text(content)
        (folder / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC\n")
    sample_class.register(course, COURSE_ID, {s: s for s in (HONEST, "big-code-cell", "nested-markup",
                                                              "deep-nesting")})
    return course


def row(course, student):
    rows = {r.student: r for r in report.load_report(course).rows}
    return (rows[student].total, rows[student].problem) if student in rows else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code-mb", type=int, default=6)
    parser.add_argument("--markup-kb", type=int, default=1024)
    parser.add_argument("--depth", type=int, default=100_000)
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose grader is measured")
    args = parser.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        course = build(Path(tmp) / "course", args.repo, args.code_mb, args.markup_kb, args.depth)
        print(f"{'step':<52} {'seconds':>8} {'grader MB':>10} {'any MB':>8}")
        students = (HONEST, "big-code-cell", "nested-markup", "deep-nesting")
        for student in students:
            for step in ("autograde", "generate_feedback"):
                s, peak, kids, rc = measured([str(BIN / "nbgrader"), step, ASSIGNMENT, "--student", student,
                                              "--force"], course)
                failed |= rc != 0 and student != "deep-nesting"     # nbgrader cannot read that one: rc 1
                label = f"nbgrader {step} --student {student}"
                print(f"{label:<52} {s:8.1f} {peak:10.0f} {kids:8.0f}  rc={rc}")
        for name, cmd in (("make feedback (grading.cli.feedback)", ["-m", "grading.cli.feedback"]),
                          ("make report (grading.cli.report)", ["-m", "grading.cli.report", "--course", "."])):
            s, peak, kids, rc = measured([sys.executable, *cmd], course)
            failed |= rc != 0
            print(f"{name:<52} {s:8.1f} {peak:10.0f} {kids:8.0f}  rc={rc}")
        for student in students:
            page = course / "feedback" / student / ASSIGNMENT / "backprop.html"
            size = f"{page.stat().st_size / 1024:.0f} KB page" if page.exists() else "no page"
            print(f"{student:<16} {size:>12}  report: {row(course, student)}")
        honest_row = row(course, HONEST)
        if honest_row != (10.0, None):
            print(f"FAIL: the honest student's report row is {honest_row}, not (10.0, None)")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
