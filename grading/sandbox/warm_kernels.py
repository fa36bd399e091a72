"""Warm sandboxed kernels: each submission's kernel is forked from a template that has already imported what the
notebooks need, instead of a cold ``bwrap ... python -m ipykernel_launcher`` that imports everything again.

:class:`WarmKernelManager` is a :class:`SandboxedKernelManager` (select it with
``c.TrustedExecute.kernel_manager_class``) whose kernel provisioner (grading/sandbox/provisioners.py,
``grading-warm``) asks this process's template (grading/sandbox/
warm_template.py; made on first use, one per grading process: ``nbgrader autograde``, a formgrader server, each
Dask worker) for a kernel. The kernel is isolated exactly like a cold one (grading/in_sandbox/warm_child.py says
how), with the same limits, UID allocation, scratch directory, sockets and connection file. What the template
preloads is ``c.WarmKernels.*`` in nbgrader_config.py.

If there is no template (warm kernels disabled, not root, ``seccomp`` or ``unshare_pid`` turned off, the template
cannot start, died too often or refuses a fork), the kernel starts cold in bwrap as before, with one log line per
cause: never unsandboxed.
"""
from __future__ import annotations

import os
import typing as t

from traitlets import Bool, Dict, Float, Integer, List, Unicode
from traitlets.config import Configurable

from grading.in_sandbox import linux
from grading.sandbox.command import covered, require_executable, rlimits
from grading.sandbox.kernel_manager import SandboxedKernelManager
from grading.sandbox.provisioners import WARM
from grading.sandbox.warm_template import TemplateSettings, WarmProcess, WarmUnavailable, template_for

_noticed: set[str] = set()
COVERED_BY_DEFAULT = ("/tmp", "/dev/shm")


class WarmKernels(Configurable):
    """What the warm-kernel template preloads, and when to give up on it (``c.WarmKernels.*``)."""

    enabled = Bool(True, help="Fork kernels from a warm template (False: every kernel starts cold).").tag(config=True)
    preload = List(Unicode(), [], help="Modules the template imports once, e.g. 'numpy', 'matplotlib.pyplot' "
                                       "(MPLBACKEND=Agg is in the kernel's environment).").tag(config=True)
    preload_files = Dict(value_trait=Unicode(), default_value={},
                         help="Support modules the template imports from a file: {name: path}, e.g. the released "
                              "nn.py. A kernel whose scratch directory holds a different NAME.py (or none) does "
                              "not get the preloaded one.").tag(config=True)
    max_template_starts = Integer(3, help="Templates made per grading process and settings (a dead one is re-made "
                                          "for the next kernel); then kernels start cold.").tag(config=True)
    start_timeout_s = Float(120.0, help="How long the template may take to import everything.").tag(config=True)


class WarmKernelManager(SandboxedKernelManager):
    """A SandboxedKernelManager whose kernels are forked from the warm template (see the module docstring)."""

    sandbox_process_names = ("bwrap", "warm-sandbox", "warm-init")
    provisioner_name: t.ClassVar[str] = WARM

    def __init__(self, **kwargs: t.Any) -> None:
        super().__init__(**kwargs)
        self.warm = WarmKernels(parent=self)

    def _notice(self, cause: str) -> None:
        if cause not in _noticed:
            _noticed.add(cause)
            self.log.warning("TrustedExecute: no warm kernel (%s); using a cold sandboxed kernel", cause)

    def _refusal(self) -> str | None:
        """Why this kernel cannot be warm, or None."""
        if not self.warm.enabled:
            return "c.WarmKernels.enabled is False"
        if os.geteuid() != 0 or self.kernel_uid is None:
            return "warm kernels need root and c.SandboxedKernelManager.drop_privileges"
        if not (self.seccomp and self.unshare_pid):
            return "warm kernels need c.SandboxedKernelManager.seccomp and unshare_pid"
        if not linux.machine_supported():
            return "warm kernels need Linux 5.2 or later on x86_64 or aarch64"
        return None

    def template_settings(self) -> TemplateSettings:
        roots = {os.path.dirname(os.path.dirname(p)) for p in (self.scratch_dir, self._dirs.conn_dir or "")}
        covers = [*COVERED_BY_DEFAULT, *sorted(r for r in roots if r and not covered(r, COVERED_BY_DEFAULT))]
        return TemplateSettings(
            bwrap=require_executable(self.bwrap_path, "bubblewrap"), python=self.python_executable,
            ro_binds=tuple(self.ro_bind_paths()), etc_files=tuple(self.etc_paths()),
            env=tuple(sorted(self.sandbox_env(passed=False).items())), preload=tuple(self.warm.preload),
            preload_files=self.preloaded_sources(), covers=tuple(covers),
            tmp_size_mb=self.tmp_size_mb, start_timeout_s=self.warm.start_timeout_s)

    def preloaded_sources(self) -> tuple[tuple[str, bytes], ...]:
        """(name, source) of c.WarmKernels.preload_files: the template is keyed by their content, not their path
        (every Dask task's scratch course has its own path to the same nn.py); an unreadable one is not preloaded."""
        sources = []
        for name, path in sorted(self.warm.preload_files.items()):
            try:
                with open(path, "rb") as f:
                    sources.append((name, f.read()))
            except OSError as e:
                self.log.warning("TrustedExecute: %s is not preloaded in warm kernels (%s)", name, e)
        return tuple(sources)

    def fork_request(self, settings: TemplateSettings) -> dict[str, t.Any]:
        return {"scratch": self.scratch_dir, "conn_dir": self._dirs.conn_dir, "conn_file": self.connection_file,
                "uid": self.kernel_uid, "limits": rlimits(**self.limit_settings()), "env": self.sandbox_env(),
                "tmp_size_mb": self.tmp_size_mb, "covers": list(settings.covers),
                "keep": [p for p in (*settings.ro_binds, *settings.etc_files)
                         if covered(p, settings.covers) and os.path.isdir(p)]}

    def fork_warm(self) -> tuple[WarmProcess, int] | None:
        """A kernel forked from the template (its process, the read end of its output pipe), or None: start cold."""
        refusal = self._refusal()
        if refusal is not None:
            self._notice(refusal)
            return None
        try:
            settings = self.template_settings()
            template = template_for(settings, self.warm.max_template_starts)
            return template.fork(self.fork_request(settings), self.scratch_dir, self._dirs.conn_dir)
        except WarmUnavailable as e:
            self._notice(str(e))
            return None
