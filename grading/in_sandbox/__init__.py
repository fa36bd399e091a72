"""Everything of the grader that runs INSIDE the bwrap sandbox, and nothing else: the trust boundary is this package.

* In the student's kernel: the kernel side of the RPC (rpc_serving.py starts it, rpc_server.py answers requests)
  and its wire format (wire.py, which the grader imports too).
* In the warm-kernel template: the fork server (fork_server.py), each submission's isolation before any student
  code runs (warm_child.py), the Linux calls they need (linux.py) and the seccomp filter (seccomp.py).

The package is shipped whole: the grader reads every module of this directory (:func:`sources`), never a list of
files. Inside, it is the package ``_grading_in_sandbox`` (:data:`INSIDE`): the RPC bootstrap (grading/rpc/
kernel_handle.py) runs this file as that package in the kernel and :func:`install` serves the other modules from
the shipped sources, imported on first use; the warm template (grading/sandbox/warm_template.py) gets a copy of
the directory under that name. Modules here import only the standard library, numpy and each other (relatively);
warm_child.py also starts ipykernel and loads pyseccomp's filter. tests/test_architecture.py checks both, and that
the rest of grading reaches this package only through its host sides, grading/rpc/ and grading/sandbox/.

Whatever runs here can be replaced by student code in the kernel: the grader trusts nothing that comes back.
"""
from __future__ import annotations

import hashlib
import importlib.abc
import importlib.util
import os
import sys

INSIDE = "_grading_in_sandbox"


def sources() -> dict[str, str]:
    """{file name: source} of every module of this package, in name order (host side: what is shipped)."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = {}
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            with open(os.path.join(here, name), encoding="utf-8") as f:
                found[name] = f.read()
    return found


def version(shipped: dict[str, str]) -> str:
    """The version of the shipped package: a hash of its sources."""
    return hashlib.sha256("".join(shipped.values()).encode()).hexdigest()[:16]


class _ShippedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``PACKAGE.NAME`` from the shipped source of NAME.py (the kernel has no file of this package)."""

    def __init__(self, package: str, shipped: dict[str, str]):
        self.package, self.shipped = package, shipped

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        package, _, name = fullname.rpartition(".")
        if package == self.package and f"{name}.py" in self.shipped:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: object) -> None:
        return None

    def exec_module(self, module: object) -> None:
        name = module.__name__.rpartition(".")[2]
        exec(compile(self.shipped[f"{name}.py"], module.__name__, "exec"), module.__dict__)


def install(shipped: dict[str, str]) -> None:
    """In the kernel, once this file runs as the package: make its other modules importable from `shipped`."""
    sys.meta_path.insert(0, _ShippedModules(__name__, shipped))
