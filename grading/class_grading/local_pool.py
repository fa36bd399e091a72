"""Local class grading without Dask: a pool of long-lived worker processes on this machine.

Each worker grades one submission at a time with the same task as a Dask worker (autograde_one.py), so it keeps
its own warm kernel template for the whole run, and sends back the same `Graded`; the coordinator records it as
the single writer, exactly as for Dask. Why not Dask here: on one machine a LocalCluster costs about 1 CPU-s to
start, a sampling profiler and heartbeats while it runs and milliseconds per task, all on the cores that grade
(docs/benchmarks.md); a pipe per worker costs well under a millisecond per task.

Workers are forked from a forkserver that imported the task's modules once (each worker starts warm, and none is
forked from the coordinator, which holds the gradebook's connection). Each worker gets the course files once,
when it starts. A worker over the task timeout is killed (its sandboxed kernels die with it: PR_SET_PDEATHSIG)
and replaced, and its student gets a one-line problem. A worker that dies is replaced and its submission given
once more to a fresh worker (as Dask retries a task whose worker died); dying twice is that student's one-line
problem. Workers die with the coordinator: each one's parent, the forkserver, exits when the coordinator does.
"""
import ctypes
import multiprocessing
import signal
import time
from collections import deque
from multiprocessing.connection import wait

from grading.class_grading.autograde_one import autograde_remotely

POLL_SECONDS = 1.0   # how often busy workers are checked against the task timeout
ATTEMPTS = 2         # times a submission is given to a worker before its worker's death is the student's problem
PR_SET_PDEATHSIG = 1
PRELOAD = ["grading.class_grading.autograde_one"]  # imported once by the forkserver, inherited by every worker


def die_with_parent():
    """Have the kernel SIGKILL this process when its parent (the forkserver) exits."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the worker ends at its next read from the closed pipe
        pass


def serve(connection, course_files):
    """A worker's life: grade each (assignment, student, files, rows) it receives, one at a time, and send back
    the Graded; end when the coordinator closes the pipe."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle: it stops the workers
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return
        connection.send(autograde_remotely(course_files, *task))


class Worker:
    """One worker process, the pipe to it, and the submission it is grading (student, task, attempt, start)."""

    def __init__(self, context, course_files):
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=serve, args=(theirs, course_files), name="grading-worker")
        self.process.start()
        theirs.close()
        self.job = None

    def give(self, student, task, attempt):
        self.connection.send(task)
        self.job = (student, task, attempt, time.monotonic())

    def seconds(self):
        return time.monotonic() - self.job[3]

    def stop(self):
        """End the worker: an idle one leaves at the closed pipe (and takes its template down), a busy one is
        killed."""
        self.connection.close()
        if self.job is None:
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=30)


class LocalPool:
    """`workers` worker processes fed from a queue of submissions; see the module docstring."""

    def __init__(self, workers, course_files, task_timeout):
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(PRELOAD)
        self.size, self.course_files, self.task_timeout = workers, course_files, task_timeout
        self.workers = []

    def _replace(self, worker):
        worker.stop()
        self.workers[self.workers.index(worker)] = Worker(self.context, self.course_files)

    def _finished(self, worker, ready, queue):
        """The outcome (student, Graded or None, problem, seconds) of a busy worker's submission, or None if it
        is still grading or was given to a fresh worker once more."""
        student, task, attempt, _ = worker.job
        seconds = worker.seconds()
        if worker.connection in ready:
            try:
                graded = worker.connection.recv()
            except (EOFError, OSError):  # the worker died
                worker.process.join(timeout=30)
                problem = f"the grading worker died (exit code {worker.process.exitcode})"
                self._replace(worker)
                if attempt < ATTEMPTS:
                    queue.appendleft((student, task, attempt + 1))
                    return None
                return student, None, problem, seconds
            worker.job = None
            return student, graded, None, seconds
        if self.task_timeout and seconds > self.task_timeout:
            self._replace(worker)  # kills the worker, and with it the kernel it holds
            return student, None, f"grading took longer than the task timeout of {self.task_timeout:g} s", seconds
        return None

    def outcomes(self, tasks):
        """Yield, as submissions end, batches [(student, Graded or None, problem, seconds)]. `tasks`:
        [(student, (assignment, student, submission files, gradebook rows))]."""
        queue = deque((student, task, 1) for student, task in tasks)
        self.workers = [Worker(self.context, self.course_files) for _ in range(min(self.size, len(queue)))]
        try:
            yield from self._run(queue)
        finally:  # also when the caller stops early (closes this generator): no worker outlives the run
            for worker in self.workers:
                worker.stop()

    def _run(self, queue):
        while queue or any(w.job for w in self.workers):
            for worker in list(self.workers):
                if worker.job is None and queue:
                    job = queue.popleft()
                    try:
                        worker.give(*job)
                    except OSError:  # an idle worker died: a fresh one takes the submission next time round
                        queue.appendleft(job)
                        self._replace(worker)
            busy = [w for w in self.workers if w.job]
            ready = set(wait([w.connection for w in busy], timeout=POLL_SECONDS))
            batch = [outcome for outcome in (self._finished(w, ready, queue) for w in busy) if outcome is not None]
            if batch:
                yield batch
