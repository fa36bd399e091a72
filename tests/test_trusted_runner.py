"""Unit tests of the grader's side of a test cell (grading/trusted/): the trusted-cell runner with a fake kernel
handle, the module allow-list, warnings without paths, the output budget, and the kernel's life and notes.
No kernel runs here; tests/test_trusted_execute.py tries the same attacks from real student cells."""
import logging
import sys
import textwrap

import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from grading.course import METADATA_KEY, PROBLEMS
from grading.rpc.client import RemoteError, RemoteName
from grading.trusted.kernel_life import DeadKernel, KernelLife
from grading.trusted.modules import TrustedModules, compiled
from grading.trusted.outputs import OutputBudget, stream_output, valid_output
from grading.trusted.runner import TrustedCellSetup, run_test_cell

CHECKER = textwrap.dedent('''
    import numpy as np

    def points(double):
        """1 point per correct case (partial credit)."""
        return sum(float(np.allclose(double(x), 2 * x)) for x in (np.arange(3.0), np.ones((2, 2))))

    def scaled(values):
        return np.asarray(values, dtype=float) * 1e308      # overflows on a student value > 1.8
''')


class FakeKernel:
    """A kernel handle whose globals are given: name -> ("value", v) | ("module", name) | ("remote", None)."""

    def __init__(self, names):
        self.names, self.deadline, self.resets, self.asked = names, None, 0, []

    def resolve(self, names):
        self.asked.append(list(names))
        return {n: self.names.get(n, ("missing", None)) for n in names}

    def session_reset(self):
        self.resets += 1


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "gradcheck.py").write_text(CHECKER)
    modules = TrustedModules({"course_root": str(tmp_path)}, names=["gradcheck"], dir_templates=["{course_root}"])
    return TrustedCellSetup(modules, output_limit=1000, time_budget=5.0)


def run(source, kernel, setup):
    return [dict(o) for o in run_test_cell(textwrap.dedent(source).strip(), kernel, setup, execution_count=3)]


def test_values_from_the_kernel_and_the_trusted_checker(setup):
    kernel = FakeKernel({"double": ("value", None), "answer": ("value", np.arange(3.0) * 2)})
    out = run("""
        import gradcheck
        print("checking")
        gradcheck.points(lambda x: answer if x.shape == (3,) else x)
        """, kernel, setup)
    assert out == [{"output_type": "stream", "name": "stdout", "text": "checking\n"},
                   {"output_type": "execute_result", "data": {"text/plain": "1.0"}, "metadata": {},
                    "execution_count": 3}]
    assert kernel.asked == [["answer"]]          # trusted names and builtins are never asked for
    assert kernel.resets == 2 and kernel.deadline is None


def test_errors_are_one_line_without_source(setup):
    out = run("secret_hidden_value = 41\nassert missing_name == secret_hidden_value", FakeKernel({}), setup)
    assert out == [{"output_type": "error", "ename": "NameError", "evalue": "name 'missing_name' is not defined",
                    "traceback": ["NameError: name 'missing_name' is not defined"]}]
    assert "secret_hidden_value" not in str(out)


def test_quiet_result_and_capped_output(setup):
    assert run("1 + 1;", FakeKernel({}), setup) == []
    out = run("print('x' * 5000)", FakeKernel({}), setup)
    assert out[0]["text"] == "x" * 1000 + "\n[output truncated]\n"


def test_only_allow_listed_modules_are_imported_in_the_grader(setup):
    assert "numpy.f2py.__main__" not in sys.modules
    kernel = FakeKernel({"sneaky": ("module", "numpy.f2py.__main__"), "m": ("module", "math"),
                         "plotting": ("module", "matplotlib.pyplot"), "checker": ("module", "gradcheck")})
    out = run("print(type(sneaky).__name__, type(plotting).__name__, m.sqrt(16.0), checker.scaled(1.0) > 0)",
              kernel, setup)
    assert out == [{"output_type": "stream", "name": "stdout", "text": "RemoteName RemoteName 4.0 True\n"}]
    assert "numpy.f2py.__main__" not in sys.modules           # f2py's command line never ran in the grader


def test_warnings_print_without_grader_paths(setup):
    out = run("import gradcheck\ngradcheck.scaled(big)", FakeKernel({"big": ("value", np.array([10.0]))}), setup)
    stderr = [o["text"] for o in out if o.get("name") == "stderr"]
    assert stderr == ["RuntimeWarning: overflow encountered in multiply\n"]
    assert "gradcheck.py" not in str(out) and "/" not in stderr[0]
    assert out[-1]["data"]["text/plain"] == "array([inf])"        # the cell still ran to its end


def test_dead_kernel_fails_every_call_cleanly(setup):
    dead = DeadKernel("in cell 4: killed by SIGSEGV")
    out = run("gradcheck.points(double)", dead, setup)
    assert out == [{"output_type": "error", "ename": "RemoteError",
                    "evalue": "kernel died (in cell 4: killed by SIGSEGV)",
                    "traceback": ["RemoteError: kernel died (in cell 4: killed by SIGSEGV)"]}]
    with pytest.raises(RemoteError):
        RemoteName(dead, "double")()
    assert not dead.ping(1.0) and not dead.alive
    dead.mark_dead("again")
    assert dead.dead_reason == "in cell 4: killed by SIGSEGV"


def test_kernel_life_after_a_failed_restart():
    """A death recorded after the restart failed: the dead stand-in must take mark_dead (it lacked it)."""
    cells = [new_code_cell("x = 1"), new_code_cell("boom()"), new_code_cell("y = 2")]
    cells[1].metadata["nbgrader"] = {"grade_id": "answer_boom"}
    nb = new_notebook(cells=cells)
    nb.metadata[METADATA_KEY] = {PROBLEMS: ["forged by the student"]}
    life = KernelLife(nb, max_restarts=1, log=logging.getLogger("test"))
    life.ran.append(0)
    out = life.died(1, "killed by SIGSEGV (segmentation fault)", None)
    assert out.evalue == "kernel died in cell 2: killed by SIGSEGV (segmentation fault)"
    assert life.restart_plan() == [0]
    stand_in = life.restart_failed(RuntimeError("no bwrap"))
    life.died(2, "died", stand_in)
    assert life.not_run(2).evalue == "kernel died in cell 2: killed by SIGSEGV (segmentation fault); this cell " \
                                     "was not run"
    assert life.gave_up                          # the run loop asks for no further restart
    life.write_notes()
    assert nb.metadata[METADATA_KEY][PROBLEMS] == [
        "cell 2 (answer_boom): kernel died (killed by SIGSEGV (segmentation fault))",
        "the kernel could not be restarted after cell 2: later cells were not run"]


def test_output_budget_per_cell_and_notebook():
    budget = OutputBudget(per_cell=10, per_notebook=28)
    outs = []
    for text in ("12345", "67890", "abc"):
        out = budget.admit(stream_output("stdout", text), outs)
        if out is not None:
            outs.append(out)
    assert [o.text for o in outs] == ["12345", "67890", "\n[output truncated: more than 10 bytes for this cell]\n"]
    assert budget.truncated_at == "10 bytes for this cell"
    budget.start_cell()
    budget.end_cell(outs[:2])                   # 10 of the notebook's 28 used
    budget.start_cell()
    kept = budget.admit(stream_output("stdout", "x" * 15), [])
    assert kept.text == "x" * 10 + "\n[output truncated: more than 10 bytes for this cell]\n"
    budget.end_cell([stream_output("stdout", "y" * 10)])         # 20 used: 8 left
    budget.start_cell()
    outs = []
    for text in ("z" * 4, "w" * 8):
        out = budget.admit(stream_output("stdout", text), outs)
        outs += [out] if out is not None else []
    assert [o.text for o in outs] == ["z" * 4, "wwww\n[output truncated: more than 28 bytes for the notebook]\n"]
    error = budget.admit(new_output("error", ename="E", evalue="v" * 20000, traceback=["t"] * 500), [])
    assert len(error.evalue) == 10000 and len(error.traceback) == 200       # errors are kept, each capped


@pytest.mark.parametrize("out, ok", [
    ({"output_type": "stream", "name": "stdout", "text": "hi"}, True),
    ({"output_type": "stream", "name": 7, "text": "hi"}, False),
    ({"output_type": "display_data", "data": {"text/plain": 12345}, "metadata": {}}, False),
    ({"output_type": "display_data", "data": {"text/html": ["<b>", 3]}, "metadata": {}}, False),
    ({"output_type": "execute_result", "data": {"text/plain": "2.0"}, "metadata": {}, "execution_count": "x"}, False),
    ({"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["E: v"]}, True),
])
def test_valid_output(out, ok):
    assert valid_output(out) is ok


def test_execution_layer_uses_public_apis_only():
    """nbclient/jupyter_client internals the execution layer once reached into, where public APIs exist (the
    RPC client, grading/rpc/, is checked by its own tests)."""
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent / "grading"
    sources = {p: p.read_text() for d in ("plugins", "sandbox", "trusted") for p in (root / d).glob("*.py")}
    private = ["._iopub_channel", "NotebookClient.__init__", "_check_assign_resources", "_async_cleanup_kernel",
               "_connection_file_written", "._make_url(", "hasattr(self.km"]
    assert [(p.name, name) for p, text in sources.items() for name in private if name in text] == []


def test_trusted_modules_are_compiled_once_per_content_and_executed_fresh_per_notebook(tmp_path):
    """Each notebook gets fresh module objects with their own state; the code is compiled once per grading process
    for each content of the file (an edited file is compiled anew)."""
    (tmp_path / "gradcheck.py").write_text("SEED_SALT = None\nstate = []\n")

    def load(salt):
        return TrustedModules({"course_root": str(tmp_path)}, {"gradcheck": {"SEED_SALT": salt}},
                              names=["gradcheck"], dir_templates=["{course_root}"]).load("gradcheck")
    first, second = load(1), load(2)
    first.state.append("first notebook")
    assert first is not second and (first.SEED_SALT, second.SEED_SALT) == (1, 2) and second.state == []
    path = str(tmp_path / "gradcheck.py")
    code = compiled(path)
    assert compiled(path) is code   # the same file content: the same code object
    (tmp_path / "gradcheck.py").write_text("SEED_SALT = None\nstate = ['edited']\n")
    assert load(3).state == ["edited"] and compiled(path) is not code
