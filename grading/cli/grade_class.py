"""Autograde every submission of an assignment, with progress, on one core or many, locally or on Dask.

    python -m grading.cli.grade_class [--workers N] [--scheduler tcp://host:8786] [--task-timeout S] [--student ID ...]

Grading stays nbgrader's: every submission goes through nbgrader's own Autograde converter (the same one that
`nbgrader autograde` and formgrader's "autograde" button run), configured by nbgrader_config.py.

With one worker, submissions are graded one after another in this process. With more, the expensive part
(running each notebook in its own fresh sandboxed kernel) is farmed out to Dask workers
(grading/cli/autograde_one.py): each task carries the course files and one submission, runs nbgrader's
Autograde in a private scratch course on the worker, and sends back the executed notebook. This process then
records each result with nbgrader's Autograde again, whose ReplayExecute step (grading/plugins/replay.py)
reuses the worker's outputs instead of executing, so the gradebook has a single writer and its grades,
autograded notebooks and feedback are exactly those of a sequential run. Workers need no shared filesystem and
no copy of this repository: they get the `grading` package once (grading/cli/ship_package.py). A task whose
worker dies is retried by Dask; a task still running after --task-timeout seconds is stopped (its worker is
restarted). Whatever goes wrong with one submission becomes that student's one-line problem in
autograded/<PROBLEMS_FILE>, and the class run goes on.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from distributed import Client, LocalCluster, wait
from sqlalchemy.exc import SAWarning
from traitlets.config.loader import PyFileConfigLoader

from grading.cli.autograde_one import (STARTED_TOPIC, TRUSTED_EXECUTE, course_payload, execute_remotely, load_api,
                                       one_line, submission_payload)
from grading.cli.report import reason_from_nbgrader_result
from grading.cli.ship_package import ship_to_workers, shipped_task
from grading.course import ASSIGNMENT, PROBLEMS_FILE

# nbgrader 0.9.6's gradebook code trips SQLAlchemy 2's session warnings on every submission; they say nothing
# about the grades and would drown the progress lines.
warnings.filterwarnings("ignore", category=SAWarning)

REPLAY_EXECUTE = "grading.plugins.replay.ReplayExecute"
TASK_TIMEOUT = 1800.0  # seconds a Dask task may run: well above a notebook's own time budget
POLL_SECONDS = 1.0     # how often running tasks are checked against the task timeout


def submitted_students(course, assignment):
    return sorted(p.parent.name for p in (Path(course) / "submitted").glob(f"*/{assignment}") if p.is_dir())


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


def record_problems(course, graded, problems):
    """Keep autograded/<PROBLEMS_FILE> ({student: one-line reason}) current for the students just graded."""
    path = Path(course) / "autograded" / PROBLEMS_FILE
    known = json.loads(path.read_text()) if path.exists() else {}
    for student in graded:
        known.pop(student, None)
    known.update(problems)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(known.items())), indent=1) + "\n")
    os.replace(tmp, path)  # a run killed mid-write leaves the old file, never half a file


class Outcomes:
    """Collects each student's outcome: PROBLEMS_FILE, the progress line, and {student: problem} to return."""

    def __init__(self, course, total, workers):
        self.course, self.progress, self.problems = course, Progress(total, workers), {}

    def add(self, student, problem, seconds):
        if problem:
            self.problems[student] = problem
        record_problems(self.course, [student], {student: problem} if problem else {})
        self.progress.report(student, seconds, problem)


def grade_sequentially(course, assignment, students):
    api = load_api(course)
    outcomes = Outcomes(course, len(students), 1)
    for student in students:
        start = time.monotonic()
        try:
            problem = reason_from_nbgrader_result(api.autograde(assignment, student))
        except Exception as error:
            problem = one_line(error)
        outcomes.add(student, problem, time.monotonic() - start)
    return outcomes.problems


# ---------------------------------------------------------------- on Dask ------------------------------------

def replay_pipeline(course):
    """The course's autograde pipeline with TrustedExecute replaced by ReplayExecute."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    pipeline = list(config.Autograde.autograde_preprocessors)
    swapped = [REPLAY_EXECUTE if step == TRUSTED_EXECUTE else step for step in pipeline]
    if swapped == pipeline:
        raise SystemExit(f"nbgrader_config.py does not autograde with {TRUSTED_EXECUTE}")
    return swapped


def record_worker_result(api, replay, assignment, result):
    """Record what a worker returned with the full autograde pipeline (replaying its outputs, or executing
    here when it sent none) and return the student's problem: this recording's verdict, which supersedes any
    problem the worker had (a worker failure that recording here overcomes is no problem)."""
    student, notebooks, _, _ = result
    for name, data in notebooks.items():
        (replay / student).mkdir(exist_ok=True)
        (replay / student / name).write_bytes(data)
    return reason_from_nbgrader_result(api.autograde(assignment, student))


class TaskClock:
    """When each task started running on its worker, from the STARTED_TOPIC events the tasks log."""

    def __init__(self):
        self._lock = threading.Lock()
        self._started = {}  # task key -> (time.monotonic() here when the event arrived, worker address)

    def __call__(self, event):  # Client.subscribe_topic handler, called in the client's event-loop thread
        _, message = event
        with self._lock:
            self._started[message["key"]] = (time.monotonic(), message["worker"])

    def running_for(self, key):
        """(seconds the task has been running, its worker address); (0.0, None) before it starts."""
        with self._lock:
            started, worker = self._started.get(key, (None, None))
        return (time.monotonic() - started, worker) if started is not None else (0.0, None)


@contextmanager
def dask_client(workers, scheduler):
    """A client of the scheduler at `scheduler`, or of a local cluster of `workers` processes."""
    # One thread per worker process: each worker runs one kernel at a time, so workers = cores.
    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                  dashboard_address=None, silence_logs=40)
    client = Client(scheduler or cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def stop_task(client, future, worker):
    """Cancel an overrunning task and restart its worker, which ends the sandboxed kernel it holds."""
    future.cancel()
    if worker is None:
        return
    try:
        client.restart_workers([worker], timeout=120, raise_for_error=True)
    except Exception as error:  # e.g. a worker without a nanny cannot be restarted: it finishes on its own
        print(f"could not restart worker {worker} ({one_line(error)}); it stays busy until the task ends",
              flush=True)


def task_outcomes(client, tasks, clock, task_timeout):
    """Yield (student, worker result or None, problem, seconds) as tasks finish, fail or overrun task_timeout."""
    pending = dict(tasks)  # task key -> (future, student)
    while pending:
        try:
            wait([future for future, _ in pending.values()], timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass
        for key, (future, student) in list(pending.items()):
            seconds, worker = clock.running_for(key)
            if future.done():
                del pending[key]
                try:
                    result = future.result()
                except Exception as error:  # the task raised, or Dask gave up on it (e.g. KilledWorker)
                    yield student, None, one_line(error), seconds
                else:
                    yield student, result, None, result[3]
            elif task_timeout and seconds > task_timeout:
                del pending[key]
                stop_task(client, future, worker)
                yield student, None, f"grading took longer than the task timeout of {task_timeout:g} s", seconds


def grade_on_dask(course, assignment, students, workers, scheduler=None, task_timeout=TASK_TIMEOUT):
    replay = Path(tempfile.mkdtemp(prefix="replay-"))
    outcomes = Outcomes(course, len(students), workers)
    try:
        with dask_client(workers, scheduler) as client:
            ship_to_workers(client)
            clock = TaskClock()
            client.subscribe_topic(STARTED_TOPIC, clock)
            course_files = client.scatter(course_payload(course, assignment), broadcast=True)
            task, tasks = shipped_task(execute_remotely), {}
            for student in students:
                try:
                    files = submission_payload(course, assignment, student)
                except OSError as error:
                    outcomes.add(student, f"submission could not be read ({one_line(error)})", 0.0)
                    continue
                future = client.submit(task, course_files, assignment, student, files, key=f"grade-{student}",
                                       pure=False)
                tasks[future.key] = (future, student)
            api = load_api(course, ReplayExecute={"replay_directory": str(replay)},
                           Autograde={"autograde_preprocessors": replay_pipeline(course)})
            for student, result, problem, seconds in task_outcomes(client, tasks, clock, task_timeout):
                if result is not None:
                    try:  # record with nbgrader's own Autograde, the gradebook's single writer
                        problem = record_worker_result(api, replay, assignment, result)
                    except Exception as error:
                        problem = one_line(error)
                outcomes.add(student, problem, seconds)
    finally:
        shutil.rmtree(replay, ignore_errors=True)
    return outcomes.problems


def main(argv=None):
    parser = argparse.ArgumentParser(description="Autograde every submission of an assignment.")
    parser.add_argument("--course", default=".", help="course directory (default: here)")
    parser.add_argument("--assignment", default=ASSIGNMENT)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="parallel kernels (default: cores)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (default: a local cluster)")
    parser.add_argument("--task-timeout", type=float, default=TASK_TIMEOUT,
                        help=f"seconds one submission may take on a Dask worker (default: {TASK_TIMEOUT:g}; "
                             "0: no limit); over it, the student gets a one-line problem")
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
        problems = grade_on_dask(course, args.assignment, students, args.workers, args.scheduler,
                                 args.task_timeout)
    print(f"graded {len(students) - len(problems)}/{len(students)} submissions in {time.monotonic() - start:.1f} s")
    for student, problem in sorted(problems.items()):
        print(f"  {student}: {problem}")


if __name__ == "__main__":
    main()
