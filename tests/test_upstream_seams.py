"""The public seams of nbclient and jupyter_client the grader is built on, and the upstream behaviour its one
remaining private override relies on (fast; real nbclient/jupyter_client, no kernel).

* Cell timeouts: nbclient's public ``timeout_func`` (TrustedExecute sets it to cut each cell's timeout to the
  notebook's time budget: grading/trusted/kernel_life.py).
* Sandboxed kernels: jupyter_client kernel provisioners registered by entry point (grading/sandbox/
  provisioners.py), named in the kernel spec's metadata by the sandbox's kernel managers only.
* Private, no public hook: nbclient's ``_async_handle_timeout`` (TrustedExecute notes that a cell timed out; the
  error reply is the kernel's to forge). Pinned below, as is the ``format_kernel_cmd`` call of jupyter_client's
  LocalProvisioner that wraps the kernel's command in bwrap.
"""
import inspect

import nbformat
from jupyter_client.manager import AsyncKernelManager, KernelManager
from jupyter_client.provisioning import KernelProvisionerFactory, LocalProvisioner
from nbclient import NotebookClient

from grading.plugins.trusted_execute import TrustedExecute
from grading.sandbox.kernel_manager import SandboxedKernelManager
from grading.sandbox.provisioners import SandboxedProvisioner, WarmProvisioner
from grading.sandbox.warm_kernels import WarmKernelManager


def test_nbclient_asks_timeout_func_for_each_cells_timeout():
    cell = nbformat.v4.new_code_cell("x = 1")
    seen = []
    client = NotebookClient(nbformat.v4.new_notebook(cells=[cell]), timeout=60,
                            timeout_func=lambda c: seen.append(c) or 7)
    assert client._get_timeout(cell) == 7 and seen == [cell]
    assert NotebookClient(nbformat.v4.new_notebook(), timeout_func=lambda c: -1)._get_timeout(cell) is None


def test_trusted_execute_cuts_cell_timeouts_through_timeout_func():
    ex = TrustedExecute(timeout=60)
    assert ex.timeout_func == ex.budgeted_timeout
    assert "_get_timeout" not in vars(TrustedExecute) and all("_get_timeout" not in vars(k)
                                                               for k in TrustedExecute.__mro__ if k.__module__
                                                               .startswith("grading."))


def test_nbclient_reports_a_timeout_through_async_handle_timeout():
    """The one private nbclient method TrustedExecute overrides: nbclient calls it, with the timeout and the cell,
    when a cell's reply does not come in time."""
    source = inspect.getsource(NotebookClient)
    assert "await self._async_handle_timeout(timeout, cell)" in source
    assert list(inspect.signature(NotebookClient._async_handle_timeout).parameters) == ["self", "timeout", "cell"]


def test_the_provisioners_are_registered_by_entry_point():
    factory = KernelProvisionerFactory.instance()
    names = {name: ep.load() for name, ep in factory.provisioners.items()}
    assert names["grading-sandboxed"] is SandboxedProvisioner and names["grading-warm"] is WarmProvisioner


def test_only_the_sandboxs_kernel_managers_name_the_sandboxs_provisioners():
    """Formgrader's and Jupyter's own kernels keep jupyter_client's default provisioner."""
    for km_class, name in ((SandboxedKernelManager, "grading-sandboxed"), (WarmKernelManager, "grading-warm")):
        spec = km_class(kernel_name="python3").kernel_spec
        assert spec.metadata["kernel_provisioner"]["provisioner_name"] == name and spec.interrupt_mode == "signal"
        assert KernelProvisionerFactory.instance().is_provisioner_available(spec)
    for km_class in (KernelManager, AsyncKernelManager):
        assert "kernel_provisioner" not in km_class(kernel_name="python3").kernel_spec.metadata


def test_jupyter_client_makes_the_provisioner_from_the_kernel_spec_and_it_formats_the_command():
    """The sandbox's command line is SandboxedKernelManager.format_kernel_cmd: LocalProvisioner.pre_launch calls it
    (and the manager refuses to format one for any other provisioner)."""
    assert "create_provisioner_instance(" in inspect.getsource(KernelManager._async_pre_start_kernel)
    assert "km.format_kernel_cmd(" in inspect.getsource(LocalProvisioner.pre_launch)
