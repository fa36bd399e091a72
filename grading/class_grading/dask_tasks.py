"""Dask plumbing of class grading: the cluster, when each task started, and outcomes as tasks finish,
fail or overrun the task timeout (an overrunning task is cancelled and its worker restarted, which ends the
sandboxed kernel it holds).

Dask serves `--scheduler` (a cluster, possibly of other machines); on one machine a LocalCluster is only made
when asked for (benchmarks), with its sampling profiler off: local runs use local_pool.py.
"""
import threading
import time
from contextlib import contextmanager

import dask
from distributed import Client, LocalCluster, wait

from grading.class_grading.autograde_one import STARTED_TOPIC, autograde_remotely
from grading.class_grading.problems import one_line
from grading.class_grading.ship_package import ship_to_workers, shipped_task

# A local cluster's costs that grade nothing: the profiler samples every task's stack (about 0.25 CPU-s a task).
LOCAL_CLUSTER_CONFIG = {"distributed.worker.profile.enabled": False}

POLL_SECONDS = 1.0     # how often running tasks are checked against the task timeout


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
    with dask.config.set(LOCAL_CLUSTER_CONFIG if not scheduler else {}):
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


def _outcome(client, future, student, seconds, worker, task_timeout):
    """(student, task result or None, problem, seconds) of a finished or overrunning task; None if still fine."""
    if future.done():
        try:
            result = future.result()
        except Exception as error:  # the task raised, or Dask gave up on it (e.g. KilledWorker)
            return student, None, one_line(error), seconds
        return student, result, None, seconds
    if task_timeout and seconds > task_timeout:
        stop_task(client, future, worker)
        return student, None, f"grading took longer than the task timeout of {task_timeout:g} s", seconds
    return None


def task_outcomes(client, tasks, clock, task_timeout):
    """Yield, as tasks end, batches: [(student, task result or None, problem, seconds)] of every task that
    finished, failed or overran task_timeout since the last batch. `tasks`: {task key: (future, student)}."""
    pending = dict(tasks)
    while pending:
        try:
            wait([future for future, _ in pending.values()], timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass
        batch = []
        for key, (future, student) in list(pending.items()):
            seconds, worker = clock.running_for(key)
            outcome = _outcome(client, future, student, seconds, worker, task_timeout)
            if outcome is not None:
                del pending[key]
                batch.append(outcome)
        if batch:
            yield batch


def dask_outcomes(tasks, course_files, workers, scheduler, task_timeout):
    """Yield, as tasks end, batches [(student, Graded or None, problem, seconds)] of `tasks`
    ([(student, (assignment, student, submission files, gradebook rows))]), each one a Dask task on the scheduler
    at `scheduler` or on a local cluster of `workers` processes."""
    with dask_client(workers, scheduler) as client:
        ship_to_workers(client)
        clock = TaskClock()
        client.subscribe_topic(STARTED_TOPIC, clock)
        shared = client.scatter(course_files, broadcast=True)  # once per worker
        task, futures = shipped_task(autograde_remotely), {}
        for student, args in tasks:
            future = client.submit(task, shared, *args, key=f"grade-{student}", pure=False)
            futures[future.key] = (future, student)
        yield from task_outcomes(client, futures, clock, task_timeout)
