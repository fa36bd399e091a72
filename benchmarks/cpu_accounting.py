"""CPU seconds of one benchmarked run: in all, and in its kernels, so that figures survive a busy machine.

Wall time on a shared machine measures the neighbours too; CPU seconds measure the run. As root with cgroup v1's
cpuacct controller, the run's processes start in a cgroup of their own (every process they start, however it
ends, is counted, including those that already exited), and each kernel -- a sandbox's outermost `bwrap` (a cold
kernel or the warm-kernel template the kernels are forked from) or a stock `ipykernel_launcher` -- is moved into
a child cgroup "kernels" as soon as a poll sees it, so everything it forks later is counted there. A kernel's
first poll interval (POLL_SECONDS) is counted as the grader's. Without cgroups: the run's total from
getrusage(RUSAGE_CHILDREN) (processes reaped along the tree), and no kernel share.
"""
import os
import resource
import threading
import time
from pathlib import Path

import psutil

CPUACCT = Path("/sys/fs/cgroup/cpuacct")
POLL_SECONDS = 0.05
DRAIN_SECONDS = 60.0  # how long the end of a run waits for its last processes (templates, kernels) to exit
KERNEL_MARKS = ("bwrap", "ipykernel_launcher")  # a process whose name or command line has one is a kernel's


def _is_kernel(process):
    try:
        return process.name() == "bwrap" or any(KERNEL_MARKS[1] in part for part in process.cmdline())
    except psutil.Error:
        return False


class RunCPU:
    """Use as `with RunCPU(name) as cpu: subprocess.run(..., preexec_fn=cpu.enter)`, polling with cpu.watch(pid)
    while it runs; then cpu.seconds() -> (total, kernels or None)."""

    def __init__(self, name):
        self.run = CPUACCT / f"bench-{os.getpid()}-{name}"
        self.kernels = self.run / "kernels"
        self.cgroups = os.geteuid() == 0 and (CPUACCT / "cpuacct.usage").exists()
        self.moved, self.stopped = set(), threading.Event()
        self.total = self.kernel_seconds = None

    def __enter__(self):
        if self.cgroups:
            try:
                self.kernels.mkdir(parents=True)
            except OSError:  # e.g. a read-only cgroup file system in a container
                self.cgroups = False
        self._children_before = self._children_cpu()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        if self.cgroups:
            self._drain()
            self.total, self.kernel_seconds = self._usage(self.run), self._usage(self.kernels)
            for group in (self.kernels, self.run):  # empty once the run's processes are gone
                try:
                    group.rmdir()
                except OSError:
                    pass
        else:
            self.total = self._children_cpu() - self._children_before

    def _drain(self):
        """Wait until no process is left in the run's cgroups: a run's last processes (a worker's template, a
        stopping kernel) may still be exiting when its first process has, and their CPU counts too."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline and any((group / "cgroup.procs").read_text().strip()
                                                  for group in (self.run, self.kernels)):
            time.sleep(POLL_SECONDS)

    @staticmethod
    def _usage(group):
        return int((group / "cpuacct.usage").read_text()) / 1e9

    @staticmethod
    def _children_cpu():
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def enter(self):
        """preexec_fn of the run's first process: into the run's cgroup, with all it will start."""
        if self.cgroups:
            (self.run / "cgroup.procs").write_text("0")

    def watch(self, pid):
        """Poll `pid`'s process tree in a thread until the run ends, moving kernels and all below them into
        the kernels' cgroup."""
        if self.cgroups:
            threading.Thread(target=self._poll, args=(pid,), daemon=True).start()

    def _poll(self, pid):
        while not self.stopped.is_set():
            try:
                tree = psutil.Process(pid).children(recursive=True)
            except psutil.Error:
                return
            for process in tree:
                if process.pid not in self.moved and (_is_kernel(process) or self._below_kernel(process)):
                    self._move(process.pid)
            time.sleep(POLL_SECONDS)

    def _below_kernel(self, process):
        try:
            return process.ppid() in self.moved
        except psutil.Error:
            return False

    def _move(self, pid):
        try:
            (self.kernels / "cgroup.procs").write_text(str(pid))
            self.moved.add(pid)
        except OSError:  # it exited meanwhile
            pass

    def seconds(self):
        """(CPU seconds of the whole run, of which its kernels' or None)."""
        return self.total, self.kernel_seconds
