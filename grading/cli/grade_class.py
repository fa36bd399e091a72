"""Autograde every submission of an assignment, with progress, on one core or many, locally or on Dask.

    python -m grading.cli.grade_class [--workers N] [--scheduler tcp://host:8786] [--task-timeout S] [--force]
                                      [--student ID ...]

Grading stays nbgrader's: every submission goes through nbgrader's own Autograde converter (the same one that
`nbgrader autograde` and formgrader's "autograde" button run), configured by nbgrader_config.py, once.

A run grades only what is missing or changed (grading/cli/up_to_date.py: new or resubmitted, failed or interrupted
last time, the config or source notebook edited since); --force grades every submission named.

With one worker, submissions are graded one after another in this process by nbgrader's API. With more, each
submission is one Dask task (grading/cli/autograde_one.py) that runs nbgrader's full Autograde on a worker, in a
private scratch course whose gradebook is a SQLite snapshot of the assignment's structure plus that student's rows
(grading/cli/gradebook_rows.py), and sends back the autograded files and the student's gradebook values. This
process, the gradebook's single writer, records them (grading/cli/recording.py) into autograded/ and the course
gradebook -- SQLite or PostgreSQL, wherever db_url points; workers never reach it -- committing each batch of
finished results at once, so a run killed at any moment loses no recorded grade. Course files and the snapshot
travel once per worker; workers need no shared filesystem and no copy of this repository: they get the `grading`
package once (grading/cli/ship_package.py). A task whose worker dies is retried by Dask; a task still running
after --task-timeout seconds is stopped (its worker is restarted; grading/cli/dask_tasks.py). Whatever goes wrong
with one submission becomes that student's one-line problem in autograded/<PROBLEMS_FILE>, and the class run goes
on.
"""
import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from sqlalchemy.exc import SAWarning

from grading.cli.autograde_one import (STARTED_TOPIC, autograde_remotely, course_payload, load_api, one_line,
                                       submission_payload)
from grading.cli.dask_tasks import TaskClock, dask_client, task_outcomes
from grading.cli.recording import Recorder
from grading.cli.report import reason_from_nbgrader_result
from grading.cli.ship_package import ship_to_workers, shipped_task
from grading.cli.up_to_date import GradedMarks
from grading.course import ASSIGNMENT, PROBLEMS_FILE
from grading.plugins.intake import SubmissionIntake, UnsafeSubmissionError

# nbgrader 0.9.6's gradebook code trips SQLAlchemy 2's session warnings on every submission; they say nothing
# about the grades and would drown the progress lines.
warnings.filterwarnings("ignore", category=SAWarning)

TASK_TIMEOUT = 1800.0  # seconds a Dask task may run: well above a notebook's own time budget


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
    api, marks = load_api(course), GradedMarks(course, assignment)
    outcomes = Outcomes(course, len(students), 1)
    for student in students:
        start, digest = time.monotonic(), marks.digest(student)
        try:
            problem = reason_from_nbgrader_result(api.autograde(assignment, student))
        except Exception as error:
            problem = one_line(error)
        marks.update({student: digest if problem is None else None})
        outcomes.add(student, problem, time.monotonic() - start)
    return outcomes.problems


# ---------------------------------------------------------------- on Dask ------------------------------------

def submit_tasks(client, recorder, marks, course, assignment, students, outcomes):
    """One Dask task per readable submission, with that student's gradebook rows: ({task key: (future, student)},
    {student: digest of what their task grades})."""
    refusals = SubmissionIntake.for_course(course)
    course_files = client.scatter(course_payload(course, assignment), broadcast=True)  # once per worker
    task, tasks, digests = shipped_task(autograde_remotely), {}, {}
    for student in students:
        refused = refusals.refusal(Path(course) / "submitted", student, assignment)
        if refused:  # reported as nbgrader's own Autograde reports it, and nothing recorded, as it records nothing
            outcomes.add(student, f"{UnsafeSubmissionError.__module__}.{UnsafeSubmissionError.__name__}: {refused}",
                         0.0)
            continue
        try:
            files = submission_payload(course, assignment, student)
        except OSError as error:
            outcomes.add(student, f"submission could not be read ({one_line(error)})", 0.0)
            continue
        future = client.submit(task, course_files, assignment, student, files, recorder.rows_for(student),
                               key=f"grade-{student}", pure=False)
        tasks[future.key], digests[student] = (future, student), marks.digest(student, files)
    return tasks, digests


def record_batch(recorder, marks, digests, batch):
    """Record a batch of task outcomes in autograded/ and the gradebook, commit, then mark the graded ones up to
    date; returns [(student, problem, seconds)]."""
    marks.update({student: None for student, *_ in batch})  # no mark on a submission while it is rewritten
    done = []
    for student, result, problem, seconds in batch:
        if result is not None:
            problem, seconds = result.problem, result.seconds
            try:
                recorder.record(result)
            except Exception as error:
                problem = one_line(error)
        done.append((student, problem, seconds))
    recorder.commit()
    marks.update({student: digests[student] for student, problem, _ in done if problem is None})
    return done


def grade_on_dask(course, assignment, students, workers, scheduler=None, task_timeout=TASK_TIMEOUT):
    outcomes, marks = Outcomes(course, len(students), workers), GradedMarks(course, assignment)
    recorder = Recorder(course, assignment)
    try:
        with dask_client(workers, scheduler) as client:
            ship_to_workers(client)
            clock = TaskClock()
            client.subscribe_topic(STARTED_TOPIC, clock)
            tasks, digests = submit_tasks(client, recorder, marks, course, assignment, students, outcomes)
            for batch in task_outcomes(client, tasks, clock, task_timeout):
                for student, problem, seconds in record_batch(recorder, marks, digests, batch):
                    outcomes.add(student, problem, seconds)
    finally:
        recorder.close()
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
    parser.add_argument("--force", action="store_true",
                        help="grade every submission named, even those graded since they last changed")
    args = parser.parse_args(argv)
    course = Path(args.course).resolve()
    sys.path.insert(0, str(course))
    named = args.student or submitted_students(course, args.assignment)
    skipped = [] if args.force else GradedMarks(course, args.assignment).up_to_date(named)
    students = [s for s in named if s not in skipped]
    if skipped:
        print(f"{len(skipped)} submission(s) already graded and unchanged: skipped (--force grades them again)")
    print(f"autograding {len(students)} submissions of {args.assignment} with "
          f"{'the Dask scheduler at ' + args.scheduler if args.scheduler else f'{args.workers} worker(s)'}")
    start = time.monotonic()
    if not students:
        problems = {}
    elif args.workers <= 1 and not args.scheduler:
        problems = grade_sequentially(course, args.assignment, students)
    else:
        problems = grade_on_dask(course, args.assignment, students, args.workers, args.scheduler,
                                 args.task_timeout)
    print(f"graded {len(students) - len(problems)}/{len(students)} submissions in {time.monotonic() - start:.1f} s")
    for student, problem in sorted(problems.items()):
        print(f"  {student}: {problem}")


if __name__ == "__main__":
    main()
