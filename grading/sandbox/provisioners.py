"""The sandbox's kernel provisioners: jupyter_client's public seam for how a kernel process is launched, signalled,
killed and cleaned up. Registered by entry point (pyproject.toml, group ``jupyter_client.kernel_provisioners``):

* ``grading-sandboxed`` (:class:`SandboxedProvisioner`): a cold kernel, ``bwrap ... python -m ipykernel_launcher``
  (the command is the kernel manager's ``format_kernel_cmd``: grading/sandbox/command.py);
* ``grading-warm`` (:class:`WarmProvisioner`): a kernel forked from the warm template (grading/sandbox/
  warm_template.py), or a cold one when there is no template.

Only the grader's student kernels use them: a SandboxedKernelManager reads kernel specs through
:class:`SandboxKernelSpecs`, which names its provisioner in the spec's ``metadata.kernel_provisioner``. Jupyter's
and formgrader's own kernels keep jupyter_client's default spec manager and provisioner. The settings stay traits of
the kernel manager (``c.SandboxedKernelManager.*``, ``c.WarmKernels.*``), the provisioner's parent, which also keeps
the connection file, the runtime directories and the kernel's UID.
"""
from __future__ import annotations

import os
import signal
import subprocess
import typing as t

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Unicode

from grading.in_sandbox.seccomp import bpf_fd
from grading.sandbox.processes import descendants, signal_all

SANDBOXED, WARM = "grading-sandboxed", "grading-warm"


class SandboxKernelSpecs(KernelSpecManager):
    """Kernel specs as a SandboxedKernelManager sees them: launched by `provisioner`, interrupted by signal (the
    provisioner signals the kernel's processes inside the sandbox, never bwrap's own)."""

    provisioner = Unicode(SANDBOXED, help="Entry-point name of the kernel provisioner").tag(config=False)

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        spec = super().get_kernel_spec(kernel_name)
        spec.metadata = {**spec.metadata, "kernel_provisioner": {"provisioner_name": self.provisioner, "config": {}}}
        spec.interrupt_mode = "signal"
        return spec


class SandboxedProvisioner(LocalProvisioner):  # type: ignore[misc]
    """Launches the kernel in a fresh bwrap sandbox (see the module docstring); `parent` is the
    SandboxedKernelManager."""

    seccomp_fd: int | None = None       # the compiled filter, open from pre_launch until the launch

    async def pre_launch(self, **kw: t.Any) -> dict[str, t.Any]:
        km = self.parent
        km.prepare_launch(kw)
        self.close_seccomp_fd()
        self.seccomp_fd = bpf_fd() if km.seccomp else None     # named in the command line, so made first
        try:
            return await super().pre_launch(**kw)
        except BaseException:
            self.close_seccomp_fd()
            raise

    async def launch_kernel(self, cmd: list[str], **kw: t.Any) -> dict[str, t.Any]:
        read_fd, write_fd = os.pipe()
        kw.update(stdin=subprocess.DEVNULL, stdout=write_fd, stderr=write_fd)
        if self.seccomp_fd is not None:
            kw["pass_fds"] = (self.seccomp_fd,)     # bwrap reads the filter from it (jupyter_client -> Popen)
        try:
            info = await super().launch_kernel(cmd, **kw)
        finally:
            os.close(write_fd)
            self.close_seccomp_fd()
        self.parent.capture_output(read_fd)
        return info

    def close_seccomp_fd(self) -> None:
        fd, self.seccomp_fd = self.seccomp_fd, None
        if fd is not None:
            os.close(fd)

    async def post_launch(self, **kw: t.Any) -> None:
        await super().post_launch(**kw)
        await self.parent.wait_for_sockets()

    async def send_signal(self, signum: int) -> None:
        if signum == signal.SIGINT and self.process is not None:
            self.parent.interrupt_now()     # the kernel's processes: bwrap would not pass SIGINT on
            return
        await super().send_signal(signum)

    async def kill(self, restart: bool = False) -> None:
        if self.process is not None:
            signal_all(descendants(self.process.pid), signal.SIGKILL)
        await super().kill(restart=restart)

    async def cleanup(self, restart: bool = False) -> None:
        try:
            await super().cleanup(restart=restart)
        finally:
            self.parent.release_launch(restart)


class WarmProvisioner(SandboxedProvisioner):
    """Forks the kernel from this process's warm template; launches it cold when there is none (the parent, a
    WarmKernelManager, says why once in the log)."""

    warm_process: t.Any = None

    async def launch_kernel(self, cmd: list[str], **kw: t.Any) -> dict[str, t.Any]:
        forked = self.parent.fork_warm()
        if forked is None:
            return await super().launch_kernel(cmd, **kw)
        self.close_seccomp_fd()        # the child loads the filter itself
        self.process, read_fd = forked
        self.warm_process = self.process
        self.pid = self.pgid = self.process.pid      # its own session and process group
        self.parent.capture_output(read_fd)
        return self.connection_info

    async def cleanup(self, restart: bool = False) -> None:
        try:
            await super().cleanup(restart=restart)
        finally:
            warm, self.warm_process = self.warm_process, None
            if warm is not None:
                warm.close()
