"""Give every Dask worker the coordinator's `grading` package once, as files in the worker's own directory.

A worker of a remote cluster has the course's Python environment (nbgrader, numpy, dask, ...) but not
necessarily this course's code. It gets it here, before its first task: the package's files are written to
<worker local directory>/grading-<hash>/grading/ and that folder goes first on the worker's sys.path, where
it stays for the worker's life. Every task then imports `grading` from that one place. (Importing it from a
task's temporary course copy instead breaks every later import once that task's directory is deleted.)

The plugin and the tasks' entry point (`shipped_task`) travel by value (cloudpickle): neither the scheduler,
which unpickles every task it is sent, nor a worker before the plugin ran, can import `grading`.
"""
import functools
import hashlib
import importlib
import sys
from pathlib import Path

import cloudpickle
from distributed.diagnostics.plugin import WorkerPlugin

import grading

PACKAGE = "grading"


class ShipPackage(WorkerPlugin):
    """Installs one package, as it is on the coordinator, on every worker that joins the cluster."""

    name = "ship-grading-package"

    def __init__(self, package_dir):
        package_dir = Path(package_dir)
        self.files = {str(p.relative_to(package_dir)): p.read_bytes() for p in sorted(package_dir.rglob("*"))
                      if p.is_file() and "__pycache__" not in p.parts}
        digest = hashlib.sha256()
        for rel, data in self.files.items():
            digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
        self.version = digest.hexdigest()[:16]

    def setup(self, worker):
        home = Path(worker.local_directory) / f"{PACKAGE}-{self.version}"
        for rel, data in self.files.items():
            path = home / PACKAGE / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        loaded = sys.modules.get(PACKAGE)
        if loaded is not None and Path(loaded.__path__[0]).resolve() != (home / PACKAGE).resolve():
            # A long-lived worker that served another version of the course: forget that version's modules.
            for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
                del sys.modules[name]
        if str(home) in sys.path:
            sys.path.remove(str(home))
        sys.path.insert(0, str(home))


def call_shipped(target, *args):
    """Call `target` ("module:name", a function of the shipped package) on the worker running the task."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(*args)


class ByValue:
    """`function`, pickled by value (cloudpickle) even inside an ordinary pickle such as Dask's task graph."""

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)

    def __reduce__(self):
        return cloudpickle.loads, (cloudpickle.dumps(self.function),)


def shipped_task(function):
    """A Dask task function calling `function` (module-level, in the shipped package) on the worker; the
    scheduler, which unpickles every task, and the worker can unpickle it without importing `grading`."""
    return ByValue(functools.partial(call_shipped, f"{function.__module__}:{function.__qualname__}"))


def ship_to_workers(client):
    """Register the plugin for the `grading` package this process runs: current and future workers get it."""
    client.register_plugin(ShipPackage(Path(grading.__file__).parent))


cloudpickle.register_pickle_by_value(sys.modules[__name__])
