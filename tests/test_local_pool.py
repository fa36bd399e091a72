"""The local worker pool of class grading (grading/class_grading/local_pool.py) on its own, with real worker
processes: a worker that dies costs only its own submission, once given again, then as one line; a submission
over the task timeout is stopped and its worker replaced; the others are graded meanwhile (fast: no kernel runs,
the tasks below fail or stall before grading)."""
import os
import time

from grading.class_grading.local_pool import LocalPool


class KillsItsWorker:
    """A task argument whose unpickling in the worker ends the worker process, as a crash would."""

    def __reduce__(self):
        return os._exit, (3,)


class StallsItsWorker:
    """A task argument whose unpickling keeps the worker busy far longer than the test's task timeout."""

    def __reduce__(self):
        return time.sleep, (60,)


def run_pool(tasks, task_timeout=0):
    outcomes = {}
    for batch in LocalPool(2, {}, task_timeout).outcomes(tasks):
        for student, graded, problem, _ in batch:
            assert student not in outcomes, f"{student} came back twice"
            outcomes[student] = (graded, problem)
    return outcomes


def ungradable(student):
    """A task the worker runs to its end: nbgrader's Autograde cannot start without course files."""
    return student, ("ex09_backprop", student, {}, {})


def test_a_worker_that_dies_twice_on_a_submission_is_its_one_line_problem():
    outcomes = run_pool([("crash", ("ex09_backprop", "crash", KillsItsWorker(), {})), ungradable("ada"),
                         ungradable("ben")])
    assert outcomes["crash"] == (None, "the grading worker died (exit code 3)")
    for student in ("ada", "ben"):  # the task itself ran and sent back its own problem
        graded, problem = outcomes[student]
        assert problem is None and graded.student == student and graded.files is None
        assert graded.problem.startswith("ConfigFileNotFound: File 'nbgrader_config.py' does not exist")


def test_a_submission_over_the_task_timeout_is_stopped_and_the_rest_graded():
    start = time.monotonic()
    outcomes = run_pool([("sloth", ("ex09_backprop", "sloth", StallsItsWorker(), {})), ungradable("ada"),
                         ungradable("ben")], task_timeout=3)
    assert time.monotonic() - start < 30, "the run waited for the stalled worker"
    assert outcomes["sloth"] == (None, "grading took longer than the task timeout of 3 s")
    assert {student for student, (graded, _) in outcomes.items() if graded is not None} == {"ada", "ben"}
