"""Benchmark: how fast a class of correct submissions is graded, against stock nbgrader and the compute floor.

    python benchmarks/bench_class.py [--students 40] [--workers CORES]      (`make bench` runs it with 40, all cores)

--students correct submissions (the instructor's answers in the released notebook, under ids s001, s002, ...)
are graded in one run on this machine, each way in a fresh temporary course directory:
(s) stock nbgrader 0.9.6: a course whose nbgrader_config.py only names the course (no grading/ plugins), the
    assignment generated from the same source notebook, `nbgrader autograde` once for the whole class: one
    process, nbgrader's default Execute, the hidden tests run in the student's kernel.
(a) the bundle's sequential `nbgrader autograde` with the course's own nbgrader_config.py (sandboxed kernels,
    test cells decided in the grader): one process for the whole class.
(p) the class-grading command on all cores: `python -m grading.cli.grade_class --workers N`.
(f) the compute floor: the notebooks' ordinary code cells (not the autograder test cells) exec'd for every
    submission in ONE warm interpreter whose imports were done once (benchmarks/compute_floor.py), divided by
    the number of cores: what grading this class costs at the very least.
Every figure is wall-clock seconds per submission: the whole run (process start included) / --students; and for
(s), (a) and (p) also CPU seconds per submission, of the grader (every process of the run but the kernels) and of
the kernels (benchmarks/cpu_accounting.py: a cgroup per run as root), which a busy machine inflates far less
than wall time. All runs, (s) included, get one thread per BLAS library (OMP_NUM_THREADS=1 ...), as the sandbox
sets it.

Printed: the four figures, the ratios (s)/(p), (a)/(s) and (p)/(f) against issue 11's targets (PASS/MISS and
by how much), the machine (cores, CPU model, load average before and after: the machine may be shared, so
compare the ratios of one run), how many submissions each run gave full marks, and where one submission's time
goes in (s) and in (a) (benchmarks/timed_autograde.py: stopwatches around public nbgrader/nbclient calls, in a
separate run on a copy of the course with a few submissions). It checks that (a) and (p) wrote identical grades
(gradebook, every student, every grade cell, the late penalty) and exits non-zero if not.
"""
import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for the grading package

from nbgrader.api import Gradebook, MissingEntry  # noqa: E402

from cpu_accounting import RunCPU  # noqa: E402
from submission_breakdown import print_breakdown  # noqa: E402
from grading.courses import sample_class  # noqa: E402
from grading.courses.course_dir import BIN, make_course, run_nbgrader  # noqa: E402
from grading.course import ASSIGNMENT, COURSE_ID, NOTEBOOK  # noqa: E402

HERE = Path(__file__).resolve().parent
# One thread per BLAS library, as the sandbox's kernels get (grading/sandbox/command.py), for every run.
THREADS_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")}
STOCK_CONFIG = f"""# Stock nbgrader: the course's name and nothing else (benchmarks/bench_class.py).
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {COURSE_ID!r}
"""
BREAKDOWN_STUDENTS = 3          # graded in the timed runs; the middle one is shown
TIMEOUT = 7200                  # seconds for one whole-class run
TARGETS = {"s/p": 4.0, "p/f": 5.0, "a/s": 1.0}


# ------------------------------------------------------------------ the machine

def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def load_average():
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# ------------------------------------------------------------------ the courses

def nbgrader(course, *args):
    proc = run_nbgrader(course, *args, timeout=TIMEOUT)
    if proc.returncode != 0:
        sys.exit(f"nbgrader {' '.join(args)} in {course} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def student_ids(students):
    return [f"s{i + 1:03d}" for i in range(students)]


def submit_correct_class(course, students):
    """generate_assignment, then `students` on-time copies of the instructor's answers, registered."""
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    solutions = sample_class.solution_sources(course / "source" / ASSIGNMENT / NOTEBOOK)
    for student in student_ids(students):
        sample_class.make_submission(course, student, -1, sample_class.SOLVED, solutions, bugs={})
    sample_class.register(course, COURSE_ID, {student: student.upper() for student in student_ids(students)})
    return course


def stock_course(root, students):
    """The course's files without its grading/ plugins and with a stock nbgrader_config.py."""
    course = make_course(root)
    shutil.rmtree(course / "grading")
    (course / "nbgrader_config.py").write_text(STOCK_CONFIG)
    return submit_correct_class(course, students)


def bundle_course(root, students):
    """The course as the bundle ships it, with a course secret of its own (shared by the copies graded)."""
    course = make_course(root)
    secret = course / "seed_secret"
    secret.write_text(secrets.token_hex(32) + "\n")
    secret.chmod(0o600)
    return submit_correct_class(course, students)


def copy_course(template, dest, keep=None):
    """A fresh copy of an ungraded course; with `keep`, only the first `keep` submissions."""
    def ignored(folder, names):
        if keep is None or Path(folder) != template / "submitted":
            return []
        return [name for name in names if name not in student_ids(keep)]
    return Path(shutil.copytree(template, dest, ignore=ignored))


# ------------------------------------------------------------------ the runs

class Run(NamedTuple):
    """One timed run: wall-clock seconds, stdout, CPU seconds in all and of its kernels (None: not measured)."""
    seconds: float
    out: str
    cpu: float
    kernel_cpu: Optional[float]


def run_timed(cmd, cwd):
    """`cmd` in `cwd`, timed (a Run); exits if it fails."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    with RunCPU(Path(cwd).name) as cpu:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=cpu.enter)
        cpu.watch(proc.pid)
        out, err = proc.communicate(timeout=TIMEOUT)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} in {cwd} failed ({proc.returncode}):\n{out}\n{err}")
    return Run(seconds, out, *cpu.seconds())


def autograded_count(course):
    return len(list((course / "autograded").glob(f"*/{ASSIGNMENT}/{NOTEBOOK}")))


def time_autograde(course):
    """The Run of one `nbgrader autograde` of the whole class in `course`."""
    return run_timed([BIN / "nbgrader", "autograde", ASSIGNMENT], course)


def time_grade_class(course, workers):
    """The Run of `grading.cli.grade_class --workers N` and its summary line."""
    run = run_timed([sys.executable, "-m", "grading.cli.grade_class", "--workers", str(workers)], course)
    summary = [line for line in run.out.splitlines() if line.startswith("graded ")]
    return run, (summary or ["(no summary line)"])[-1]


def measure_floor(submitted):
    """benchmarks/compute_floor.py's figures for the submissions below `submitted`."""
    return json.loads(run_timed([sys.executable, HERE / "compute_floor.py", submitted], submitted).out
                      .strip().splitlines()[-1])


# ------------------------------------------------------------------ the grades

def gradebook_grades(course):
    """{student: {grade cell: score, ..., "late penalty": points}} from the course's gradebook."""
    notebook_id = Path(NOTEBOOK).stem
    grades = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        for student in gb.students:
            try:
                nb = gb.find_submission_notebook(notebook_id, ASSIGNMENT, student.id)
            except MissingEntry:
                continue
            grades[student.id] = {grade.name: grade.score for grade in nb.grades}
            grades[student.id]["late penalty"] = nb.late_submission_penalty
    return grades


def grade_differences(first, second):
    """One line per student whose grades differ between the two {student: {cell: score}} tables."""
    lines = []
    for student in sorted(set(first) | set(second)):
        a, b = first.get(student), second.get(student)
        if a != b:
            cells = sorted(set(a or {}) | set(b or {}))
            diff = [f"{cell}: {(a or {}).get(cell)} vs {(b or {}).get(cell)}" for cell in cells
                    if (a or {}).get(cell) != (b or {}).get(cell)]
            lines.append(f"{student}: " + ("; ".join(diff) if a and b else "graded in only one run"))
    return lines


def full_marks(course, grades):
    """How many students of `grades` scored the assignment's maximum."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        best = gb.find_assignment(ASSIGNMENT).max_score
    return sum(1 for cells in grades.values()
               if abs(sum(v for k, v in cells.items() if k != "late penalty") - best) < 1e-9)


# ------------------------------------------------------------------ where one submission's time goes

def timed_submission(template, dest, students):
    """benchmarks/timed_autograde.py on a copy of `template` with `students` submissions: the middle
    submission's {phase: seconds}, plus "once per run" (process start, imports, config: the run's wall-clock
    time minus its submissions', shared out per submission)."""
    course = copy_course(template, dest, keep=students)
    out = dest.with_suffix(".json")
    wall = run_timed([sys.executable, HERE / "timed_autograde.py", out, "autograde", ASSIGNMENT], course).seconds
    submissions = json.loads(out.read_text())
    if len(submissions) != students:
        sys.exit(f"timed autograde in {course}: {len(submissions)} submissions timed, not {students}")
    phases = dict(submissions[len(submissions) // 2]["seconds"])
    phases["once per run"] = (wall - sum(s["seconds"]["submission"] for s in submissions)) / len(submissions)
    return phases


# ------------------------------------------------------------------ the report

def verdict(name, ratio, target, at_least):
    """PASS/MISS of one ratio against its target, and by how much."""
    met = ratio >= target if at_least else ratio <= target
    sign = ">=" if at_least else "<="
    gap = target / ratio if at_least else ratio / target
    how = "met" if met else f"missed by {gap:.2f}x"
    return f"{name} = {ratio:5.2f}   target {sign} {target:g}: {'PASS' if met else 'MISS'} ({how})"


def print_cpu(students, runs):
    """CPU seconds per submission of (s), (a) and (p): grader, kernels, in all."""
    print(f"\nCPU seconds per submission (the whole run's, process starts included, / {students}):")
    print(f"  {'':<6} {'grader':>8} {'kernels':>8} {'in all':>8}")
    for key, run in runs.items():
        kernels = "n/a" if run.kernel_cpu is None else f"{run.kernel_cpu / students:8.3f}"
        grader = "n/a" if run.kernel_cpu is None else f"{(run.cpu - run.kernel_cpu) / students:8.3f}"
        print(f"  ({key})    {grader:>8} {kernels:>8} {run.cpu / students:8.3f}")
    cpu = {key: run.cpu for key, run in runs.items()}
    print(f"  (s)/(p) in CPU seconds: {cpu['s'] / cpu['p']:.2f}; (a)/(p): {cpu['a'] / cpu['p']:.2f}")


def print_figures(students, cores, workers, runs, floor):
    t = {key: run.seconds for key, run in runs.items()}
    per = {k: v / students for k, v in t.items()}
    per["f"] = floor["seconds"] / students / cores
    print(f"\nper submission ({students} correct submissions; wall-clock of the whole run / {students}):")
    print(f"  (s) stock nbgrader 0.9.6, sequential autograde      {per['s']:7.3f} s   ({t['s']:.1f} s in all)")
    print(f"  (a) bundle, sequential nbgrader autograde           {per['a']:7.3f} s   ({t['a']:.1f} s in all)")
    print(f"  (p) grading.cli.grade_class --workers {workers:<3}           {per['p']:7.3f} s   ({t['p']:.1f} s in all)")
    print(f"  (f) compute floor: code cells, warm interpreter / {cores} {per['f']:7.3f} s   "
          f"({floor['seconds']:.1f} s for {floor['notebooks']} notebooks on one core; imports once: "
          f"{floor['import_seconds']:.1f} s, not counted)")
    print("\nratios and issue 11's targets:")
    print("  " + verdict("(s)/(p)", per["s"] / per["p"], TARGETS["s/p"], at_least=True))
    print("  " + verdict("(p)/(f)", per["p"] / per["f"], TARGETS["p/f"], at_least=False))
    print("  " + verdict("(a)/(s)", per["a"] / per["s"], TARGETS["a/s"], at_least=False))
    print_cpu(students, runs)


def grade_all(tmp, stock, bundle, students, workers):
    """Run (s), (a), (p) and (f), each on its own fresh copy; their Runs, the floor and the graded courses."""
    courses = {"s": copy_course(stock, tmp / "s"), "a": copy_course(bundle, tmp / "a"),
               "p": copy_course(bundle, tmp / "p")}
    runs = {}
    for key in ("s", "a"):
        runs[key] = time_autograde(courses[key])
        print(f"({key}) nbgrader autograde: {runs[key].seconds:.1f} s, {runs[key].cpu:.1f} CPU-s, "
              f"{autograded_count(courses[key])} notebooks autograded", flush=True)
    runs["p"], summary = time_grade_class(courses["p"], workers)
    print(f"(p) grade_class: {runs['p'].seconds:.1f} s, {runs['p'].cpu:.1f} CPU-s; it says: {summary}", flush=True)
    floor = measure_floor(bundle / "submitted")
    print(f"(f) compute floor: {floor['seconds']:.1f} s for {floor['notebooks']} notebooks", flush=True)
    return runs, floor, courses


def check_grades(courses, students):
    """Full-mark counts of every run; the lines where (a) and (p) differ."""
    grades = {key: gradebook_grades(course) for key, course in courses.items()}
    marks = ", ".join(f"({key}) {full_marks(courses[key], g)}/{students}" for key, g in grades.items())
    print(f"\nfull marks: {marks}")
    differences = grade_differences(grades["a"], grades["p"])
    print(f"grades of (a) and (p), per student per grade cell: {'identical' if not differences else 'DIFFERENT'}")
    for line in differences:
        print(f"  {line}")
    return differences


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40, help="correct submissions in the class")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="workers of (p) (default: cores)")
    args = parser.parse_args(argv)
    os.environ.update(THREADS_ENV)
    cores, load_before = os.cpu_count(), load_average()
    print(f"machine: {cores} cores, {cpu_model()}, Python {sys.version.split()[0]}; load average before "
          f"{load_before}; {args.students} submissions, (p) with {args.workers} workers", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_class_") as tmp:
        tmp = Path(tmp)
        stock = stock_course(tmp / "stock", args.students)
        bundle = bundle_course(tmp / "bundle", args.students)
        runs, floor, courses = grade_all(tmp, stock, bundle, args.students, args.workers)
        timed = min(BREAKDOWN_STUDENTS, args.students)
        breakdown = {key: timed_submission(course, tmp / f"timed_{key}", timed)
                     for key, course in (("s", stock), ("a", bundle))}
        differences = check_grades(courses, args.students)
    print_figures(args.students, cores, args.workers, runs, floor)
    print_breakdown(breakdown["s"], breakdown["a"], timed)
    print(f"\nmachine: {cores} cores, {cpu_model()}; load average (1/5/15 min) before {load_before}, "
          f"after {load_average()}")
    if differences:
        sys.exit("grades differ between (a) sequential nbgrader autograde and (p) grade_class")


if __name__ == "__main__":
    main()
