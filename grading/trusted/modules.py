"""Which modules a test cell gets: trusted copies of the course's own (``gradcheck``, ``nn``), loaded from trusted
directories, and a fixed allow-list of libraries the grader imports itself. No module name that the student's
kernel reports is ever imported unless it is on that list (a free name bound to ``numpy.f2py.__main__`` in the
kernel would otherwise run f2py's command line in the grader).

Configurable as ``c.TrustedModules.*`` in nbgrader_config.py.
"""
from __future__ import annotations

import builtins
import importlib
import os
import sys
import types
import typing as t

from traitlets import Dict, List, Unicode
from traitlets.config import LoggingConfigurable

from grading.course import TRUSTED_MODULES


_COMPILED: dict[tuple[str, bytes], types.CodeType] = {}


def compiled(path: str) -> types.CodeType:
    """The code object of the trusted file at `path`, compiled once per grading process for each content (the
    file is read every time, so an edited checker is compiled anew). Code objects are immutable: every
    notebook still executes it into fresh module objects, with their own state (the seed salt)."""
    with open(path, "rb") as f:
        source = f.read()
    key = (path, source)
    if key not in _COMPILED:
        if len(_COMPILED) >= 64:   # a long-lived process that saw many versions keeps the latest ones only
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[key] = compile(source, path, "exec")
    return _COMPILED[key]


class TrustedModules(LoggingConfigurable):
    """The modules of one notebook's test cells: trusted single-file modules (``gradcheck.py``, ``nn.py``) loaded
    once per notebook from trusted directories, with an ``__import__`` that maps their names to these copies for the
    test cells and for the modules themselves; the grader's own copies of the trusted globals (``np``); and the
    allow-list of modules the grader may import for a name bound to one in the kernel."""

    names = List(Unicode(), list(TRUSTED_MODULES),
                 help="Modules that test cells (and each other) import from trusted dirs.").tag(config=True)
    dir_templates = List(Unicode(), ["{course_root}/{source_directory}/{assignment_id}", "{course_root}"],
                         help="Where trusted modules are searched, first match wins. Formatted with course_root, "
                              "source_directory, release_directory and assignment_id.").tag(config=True)
    trusted_globals = Dict({"np": "numpy", "numpy": "numpy"},
                           help="name -> module imported in the grader and bound in every test cell.").tag(config=True)
    allowed_modules = List(Unicode(), ["numpy", "numpy.linalg", "numpy.random", "scipy.special", "math"],
                           help="Exact names of the modules the grader imports itself when a test cell's free name "
                                "is bound to one of them in the student kernel; any other module stays a remote "
                                "handle.").tag(config=True)

    def __init__(self, paths: t.Mapping[str, str] | None = None,
                 settings: t.Mapping[str, t.Mapping[str, t.Any]] | None = None, **kwargs: t.Any):
        """`paths` fill in `dir_templates`; `settings` ({module: {attribute: value}}) are set on a trusted module
        right after it is loaded, before any test cell uses it (the engine's per-submission seed salt)."""
        super().__init__(**kwargs)
        self.dirs = [d for d in (tpl.format(**(paths or {})) for tpl in self.dir_templates) if d]
        self.settings = {name: dict(values) for name, values in (settings or {}).items()}
        self.modules: dict[str, types.ModuleType] = {}
        self.builtins = dict(vars(builtins))
        self.builtins["__import__"] = self._import

    def path_of(self, name: str) -> str | None:
        for d in self.dirs:
            path = os.path.join(d, name + ".py")
            if os.path.isfile(path):
                return path
        return None

    def load(self, name: str) -> types.ModuleType:
        if name in self.modules:
            return self.modules[name]
        path = self.path_of(name)
        if path is None:
            raise ImportError(f"trusted module {name!r} not found in {self.dirs}", name=name)
        code = compiled(path)
        mod = types.ModuleType(name)
        mod.__file__ = path
        mod.__dict__["__builtins__"] = self.builtins
        self.modules[name] = mod       # before executing: circular imports between trusted modules
        saved = sys.modules.get(name)
        sys.modules[name] = mod        # while executing only (dataclasses & co. look themselves up there)
        try:
            exec(code, mod.__dict__)
            for attribute, value in self.settings.get(name, {}).items():
                setattr(mod, attribute, value)
        except BaseException:
            del self.modules[name]
            raise
        finally:
            if saved is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = saved
        return mod

    def _import(self, name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0:
            top = name.partition(".")[0]
            if top in self.names:
                if name != top:
                    raise ImportError(f"{name}: trusted modules are single files", name=name)
                return self.load(top)
        return builtins.__import__(name, globals, locals, fromlist, level)

    def globals(self) -> dict[str, types.ModuleType]:
        """name -> module of every trusted global and every trusted module that exists."""
        found = {name: importlib.import_module(modname) for name, modname in self.trusted_globals.items()}
        found.update({name: self.load(name) for name in self.names if self.path_of(name) is not None})
        return found

    def grader_module(self, name: t.Any) -> types.ModuleType | None:
        """The grader's own module for a module name the student's kernel reported, or None (the name then
        stays a remote handle): a trusted module by its exact name, or a module on the allow-list."""
        if not isinstance(name, str):
            return None
        if name in self.names:
            return self.load(name)
        if name not in self.allowed_modules:
            return None
        try:
            return importlib.import_module(name)
        except Exception:
            return None
