"""Autograde every submission of an assignment, with progress, on one core or many, locally or on Dask.

    python -m grading.cli.grade_class [--workers N] [--scheduler tcp://host:8786] [--student ID ...]

Grading stays nbgrader's: every submission goes through nbgrader's own Autograde converter (the same one that
`nbgrader autograde` and formgrader's "autograde" button run), configured by nbgrader_config.py.

With one worker, submissions are graded one after another in this process.  With more, the expensive part
(running each notebook in its own fresh sandboxed kernel) is farmed out to Dask workers: each task carries the
course files and one submission, runs nbgrader's Autograde in a private scratch course on the worker, and
sends back the executed notebook.  This process then records each result with nbgrader's Autograde again,
whose TrustedExecute step replays the worker's outputs instead of executing (see grading/plugins/trusted_execute.py), so the
gradebook has a single writer and its grades, autograded notebooks and feedback are exactly those of a
sequential run.  Workers need no shared filesystem, and a task whose worker dies is retried by Dask.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import nbformat
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from sqlalchemy.exc import SAWarning
from traitlets.config.loader import PyFileConfigLoader

from grading.course import ASSIGNMENT, PROBLEMS_FILE

# nbgrader 0.9.6's gradebook code trips SQLAlchemy 2's session warnings on every submission; they say nothing
# about the grades and would drown the progress lines.
warnings.filterwarnings("ignore", category=SAWarning)



def load_api(course, **overrides):
    """nbgrader's own API object for `course`, configured by its nbgrader_config.py (plus `overrides`)."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    config.CourseDirectory.root = str(course)
    for section, values in overrides.items():
        for key, value in values.items():
            setattr(config[section], key, value)
    return NbGraderAPI(CourseDirectory(config=config), config=config)


def submitted_students(course, assignment):
    return sorted(p.parent.name for p in (Path(course) / "submitted").glob(f"*/{assignment}") if p.is_dir())


def check(result, student):
    """None when nbgrader graded this student, else nbgrader's one-line reason."""
    if result.get("success"):
        return None
    from grading.cli.report import reason_from_nbgrader_result
    return reason_from_nbgrader_result(result)


class Progress:
    """One line per finished submission: which student, how many are done and left, time per student, ETA."""

    def __init__(self, total, workers):
        self.total, self.done, self.workers, self.start = total, 0, workers, time.monotonic()

    def report(self, student, seconds, problem=None):
        self.done += 1
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        status = f"FAILED: {problem}" if problem else "graded"
        print(f"[{self.done:>3}/{self.total}] {student:<12} {status} in {seconds:5.1f} s"
              f" | {self.total - self.done} left, ETA {eta:5.1f} s", flush=True)


# ---------------------------------------------------------------- the worker side (runs anywhere) ----------

def course_payload(course, assignment):
    """The files a worker needs to grade: config, grading package, source, release and gradebook (as bytes).
    The release tells the worker's scratch builder which support files are instructor-only; without it the
    builder refuses (grading/sandbox/scratch.py)."""
    course = Path(course)
    files = {}
    for rel in ["nbgrader_config.py", "gradebook.db", "nn.py"]:
        files[rel] = (course / rel).read_bytes()
    for base in [course / "grading", course / "source" / assignment, course / "release" / assignment]:
        for path in base.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                files[str(path.relative_to(course))] = path.read_bytes()
    return files


def submission_payload(course, assignment, student):
    base = Path(course) / "submitted" / student / assignment
    return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}


def execute_remotely(course_files, assignment, student, submission_files):
    """Autograde one submission in a private scratch course; return (student, {notebook: bytes}, problem, s)."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        root = Path(tmp)
        for rel, data in course_files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        sub = root / "submitted" / student / assignment
        for rel, data in submission_files.items():
            (sub / rel).parent.mkdir(parents=True, exist_ok=True)
            (sub / rel).write_bytes(data)
        sys.path.insert(0, str(root))
        try:
            # Execution only: grades are recorded by the coordinator (grading/plugins/replay.py).
            api = load_api(root, Autograde={"autograde_preprocessors": ["grading.plugins.trusted_execute.TrustedExecute"]})
            problem = check(api.autograde(assignment, student), student)
        finally:
            sys.path.remove(str(root))
        out = root / "autograded" / student / assignment
        notebooks = {p.name: p.read_bytes() for p in out.glob("*.ipynb")} if out.exists() else {}
    return student, notebooks, problem, time.monotonic() - start


# ---------------------------------------------------------------- the coordinator ----------------------------

def grade_sequentially(course, assignment, students):
    api = load_api(course)
    progress = Progress(len(students), 1)
    problems = {}
    for student in students:
        start = time.monotonic()
        problem = check(api.autograde(assignment, student), student)
        if problem:
            problems[student] = problem
        record_problems(course, [student], {student: problem} if problem else {})
        progress.report(student, time.monotonic() - start, problem)
    return problems


def replay_pipeline(course):
    """The course's autograde pipeline with TrustedExecute replaced by ReplayExecute."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    pipeline = list(config.Autograde.autograde_preprocessors)
    swapped = ["grading.plugins.replay.ReplayExecute" if step == "grading.plugins.trusted_execute.TrustedExecute" else step
               for step in pipeline]
    if swapped == pipeline:
        raise SystemExit("nbgrader_config.py does not autograde with grading.plugins.trusted_execute.TrustedExecute")
    return swapped


def grade_on_dask(course, assignment, students, workers, scheduler=None):
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler:
        client = Client(scheduler)
        cluster = None
    else:
        # One thread per worker process: each worker runs one kernel at a time, so workers = cores.
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    replay = Path(tempfile.mkdtemp(prefix="replay-"))
    problems = {}
    try:
        course_files = client.scatter(course_payload(course, assignment), broadcast=True)
        futures = [client.submit(execute_remotely, course_files, assignment, student,
                                 submission_payload(course, assignment, student), key=f"grade-{student}",
                                 pure=False)
                   for student in students]
        api = load_api(course, ReplayExecute={"replay_directory": str(replay)},
                       Autograde={"autograde_preprocessors": replay_pipeline(course)})
        progress = Progress(len(students), workers)
        for future in as_completed(futures):
            student, notebooks, problem, seconds = future.result()
            for name, data in notebooks.items():
                (replay / student).mkdir(exist_ok=True)
                (replay / student / name).write_bytes(data)
            # Record with nbgrader's own Autograde (single writer); it replays the worker's outputs.
            recorded = check(api.autograde(assignment, student), student)
            problem = problem or recorded
            if problem:
                problems[student] = problem
            record_problems(course, [student], {student: problem} if problem else {})
            progress.report(student, seconds, problem)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        shutil.rmtree(replay, ignore_errors=True)
    return problems


def record_problems(course, graded, problems):
    """Keep autograded/problems.json ({student: one-line reason}) current for the students just graded."""
    path = Path(course) / "autograded" / PROBLEMS_FILE
    known = json.loads(path.read_text()) if path.exists() else {}
    for student in graded:
        known.pop(student, None)
    known.update(problems)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(known.items())), indent=1) + "\n")
    os.replace(tmp, path)  # a run killed mid-write leaves the old file, never half a file


def main(argv=None):
    parser = argparse.ArgumentParser(description="Autograde every submission of an assignment.")
    parser.add_argument("--course", default=".", help="course directory (default: here)")
    parser.add_argument("--assignment", default=ASSIGNMENT)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel kernels (default: cores)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (default: a local cluster)")
    parser.add_argument("--student", action="append", help="grade only these students (repeatable)")
    args = parser.parse_args(argv)
    course = Path(args.course).resolve()
    sys.path.insert(0, str(course))
    students = args.student or submitted_students(course, args.assignment)
    print(f"autograding {len(students)} submissions of {args.assignment} with "
          f"{'the Dask scheduler at ' + args.scheduler if args.scheduler else f'{args.workers} worker(s)'}")
    start = time.monotonic()
    if args.workers <= 1 and not args.scheduler:
        problems = grade_sequentially(course, args.assignment, students)
    else:
        problems = grade_on_dask(course, args.assignment, students, args.workers, args.scheduler)
    print(f"graded {len(students) - len(problems)}/{len(students)} submissions in {time.monotonic() - start:.1f} s")
    for student, problem in sorted(problems.items()):
        print(f"  {student}: {problem}")


if __name__ == "__main__":
    main()
