"""Record, in the one process that writes the gradebook, a notebook that a parallel worker already executed.

`grading.cli.grade_class` runs nbgrader's Autograde twice per submission when it grades in parallel: on a worker,
with only TrustedExecute (the expensive part: the sandboxed kernel and the trusted test cells), and then here,
with nbgrader's full autograde pipeline in which this class stands in for TrustedExecute. It takes the
worker's outputs when the worker saw exactly the cells this run sanitized (same sources in the same order,
which holds because both ran nbgrader's sanitizing on the same submission and gradebook), and executes the
notebook itself otherwise. Everything after execution -- output limits, saving grades, late penalties -- is
nbgrader's own code, run once, so the gradebook matches a sequential run.
"""
from pathlib import Path

import nbformat
from traitlets import Unicode

from grading.plugins.trusted_execute import TrustedExecute


def cell_signature(nb):
    return [(cell.cell_type, cell.source) for cell in nb.cells]


class ReplayExecute(TrustedExecute):
    """TrustedExecute that reuses a worker's execution of the same sanitized notebook when there is one."""

    replay_directory = Unicode("", help="Holds <student>/<notebook>.ipynb as executed by the workers.").tag(
        config=True)

    def preprocess(self, nb, resources=None, km=None):
        info = (resources or {}).get("nbgrader", {})
        path = Path(self.replay_directory) / info.get("student", "") / f"{info.get('notebook', '')}.ipynb"
        executed = nbformat.read(path, as_version=4) if self.replay_directory and path.is_file() else None
        if executed is None or cell_signature(executed) != cell_signature(nb):
            self.log.warning("No matching worker result for %s; executing it here", path.parent.name)
            return super().preprocess(nb, resources, km)
        for cell, done in zip(nb.cells, executed.cells):
            if cell.cell_type == "code":
                cell.outputs = done.outputs
                cell.execution_count = done.execution_count
        nb.metadata = executed.metadata
        return nb, resources
