"""One class run: autograde the named submissions of an assignment, one after another, on local worker
processes or on Dask.

Grading stays nbgrader's: every submission goes through nbgrader's own Autograde converter (the same one that
`nbgrader autograde` and formgrader's "autograde" button run), configured by nbgrader_config.py, once.

A run grades only what is missing or changed (up_to_date.py: new or resubmitted, failed or interrupted last time,
the config or source notebook edited since); force grades every submission named.

With one worker, submissions are graded one after another in this process by nbgrader's API. With more, each
submission is one task (autograde_one.py) for a worker: a long-lived local worker process (local_pool.py), or
with a scheduler address a Dask worker (dask_tasks.py). The task runs nbgrader's full Autograde in a private
scratch course whose gradebook is a SQLite snapshot of the assignment's structure plus that student's rows
(gradebook_rows.py), and sends back the autograded files and the student's gradebook values. This process, the
gradebook's single writer, records them (recording.py) into autograded/ and the course gradebook -- SQLite or
PostgreSQL, wherever db_url points; workers never reach it -- committing each batch of finished results at once,
so a run killed at any moment loses no recorded grade. Course files and the snapshot travel once per worker;
Dask workers need no shared filesystem and no copy of this repository: they get the `grading` package once
(ship_package.py). A task whose worker dies is given to another worker; a task still running after task_timeout
seconds is stopped (its worker is killed or restarted, with its kernel). Whatever goes wrong with one submission
becomes that student's one-line problem in autograded/<PROBLEMS_FILE> (problems.py), and the class run goes on.
"""
import sys
import time
import warnings
from contextlib import closing
from pathlib import Path

from sqlalchemy.exc import SAWarning

from grading.class_grading.autograde_one import course_payload, submission_payload
from grading.class_grading.local_pool import LocalPool
from grading.class_grading.problems import one_line, reason_from_nbgrader_result, record_problems
from grading.class_grading.recording import Recorder
from grading.class_grading.up_to_date import GradedMarks
from grading.course_config import nbgrader_api
from grading.plugins.intake import SubmissionIntake, UnsafeSubmissionError

# nbgrader 0.9.6's gradebook code trips SQLAlchemy 2's session warnings on every submission; they say nothing
# about the grades and would drown the progress lines.
warnings.filterwarnings("ignore", category=SAWarning)

TASK_TIMEOUT = 1800.0  # seconds one submission's task may run: well above a notebook's own time budget


def submitted_students(course, assignment):
    return sorted(p.parent.name for p in (Path(course) / "submitted").glob(f"*/{assignment}") if p.is_dir())


def plan_run(course, assignment, students=None, force=False):
    """(students to grade, students skipped as up to date) of the named `students` (default: every submitted
    one); with `force`, none is skipped."""
    named = students or submitted_students(course, assignment)
    skipped = [] if force else GradedMarks(course, assignment).up_to_date(named)
    return [s for s in named if s not in skipped], skipped


class Outcomes:
    """Collects each student's outcome: PROBLEMS_FILE, the caller's `on_graded(student, seconds, problem)`, and
    {student: problem} to return."""

    def __init__(self, course, on_graded=None):
        self.course, self.on_graded, self.problems = course, on_graded, {}

    def add(self, student, problem, seconds):
        if problem:
            self.problems[student] = problem
        record_problems(self.course, [student], {student: problem} if problem else {})
        if self.on_graded is not None:
            self.on_graded(student, seconds, problem)


def grade_sequentially(course, assignment, students, outcomes):
    api, marks = nbgrader_api(course), GradedMarks(course, assignment)
    for student in students:
        start, digest = time.monotonic(), marks.digest(student)
        try:
            problem = reason_from_nbgrader_result(api.autograde(assignment, student))
        except Exception as error:
            problem = one_line(error)
        marks.update({student: digest if problem is None else None})
        outcomes.add(student, problem, time.monotonic() - start)


# ---------------------------------------------------------------- in parallel --------------------------------

def prepared_tasks(recorder, marks, course, assignment, students, outcomes):
    """One task per readable submission, with that student's gradebook rows: ([(student, task arguments)],
    {student: digest of what their task grades}); a refused or unreadable one is its student's problem here."""
    refusals = SubmissionIntake.for_course(course)
    tasks, digests = [], {}
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
        tasks.append((student, (assignment, student, files, recorder.rows_for(student))))
        digests[student] = marks.digest(student, files)
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


def grade_in_parallel(course, assignment, students, outcomes, workers, scheduler=None, task_timeout=TASK_TIMEOUT,
                      backend="pool"):
    """Grade on `workers` local worker processes (backend "pool", local_pool.py), or on Dask (backend "dask": the
    scheduler at `scheduler`, else a local cluster); either way recorded here, by the single writer."""
    marks, recorder = GradedMarks(course, assignment), Recorder(course, assignment)
    try:
        course_files = course_payload(course, assignment)  # first: it makes the course's seed secret if missing
        tasks, digests = prepared_tasks(recorder, marks, course, assignment, students, outcomes)
        if backend == "dask" or scheduler:
            from grading.class_grading.dask_tasks import dask_outcomes  # Dask's imports only for Dask runs
            batches = dask_outcomes(tasks, course_files, workers, scheduler, task_timeout)
        else:
            batches = LocalPool(workers, course_files, task_timeout).outcomes(tasks)
        with closing(batches):
            for batch in batches:
                for student, problem, seconds in record_batch(recorder, marks, digests, batch):
                    outcomes.add(student, problem, seconds)
    finally:
        recorder.close()


def grade_class(course, assignment, students, workers=1, scheduler=None, task_timeout=TASK_TIMEOUT,
                on_graded=None, backend="pool"):
    """Autograde `students`' submissions: one after another here (one worker, no scheduler), else on `workers`
    local worker processes, or on Dask with the scheduler at `scheduler` (backend "dask" without a scheduler: a
    local Dask cluster, for comparison). `on_graded(student, seconds, problem)` is called as each one ends.
    Returns {student: one-line problem} of those that could not be graded."""
    course = Path(course).resolve()
    sys.path.insert(0, str(course))  # the course's nbgrader_config.py names its plugins as `grading.plugins...`
    outcomes = Outcomes(course, on_graded)
    if students and workers <= 1 and not scheduler:
        grade_sequentially(course, assignment, students, outcomes)
    elif students:
        grade_in_parallel(course, assignment, students, outcomes, workers, scheduler, task_timeout, backend)
    return outcomes.problems
