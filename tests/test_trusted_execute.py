"""TrustedExecute against attacks from real student cells (bubblewrap kernel, real gradebook, nbgrader's grade
logic): module names the kernel reports, warnings that would print grader paths, links planted next to the
submission, and a course whose release folder is missing."""
import os
import shutil
import sys
from pathlib import Path

import pytest
from test_sandbox import GRADECHECK, _cell, autograde, grades, make_course, outputs_of, temporary_gradebook

from grading.sandbox.scratch import ScratchError

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

CHECKER = GRADECHECK + '''
def scaled(values):
    return np.asarray(values, dtype=float) * 1e308      # overflows on a student value above 1.8
'''

TESTS = [
    _cell("test", "print(type(sneaky).__name__, type(plotting).__name__, fine.sqrt(16.0))", "test_modules", 1),
    _cell("test", "import gradcheck\ngradcheck.scaled(big)", "test_warning", 1),
]

STUDENT = _cell("code", """
    import math, types
    sneaky = types.ModuleType("numpy.f2py.__main__")     # re-imported by name, this ran f2py's CLI in the grader
    plotting = types.ModuleType("matplotlib.pyplot")
    fine = math
    big = [10.0]
    """)


@pytest.fixture(scope="module")
def gradebook():
    with temporary_gradebook(TESTS) as db:
        yield db


def test_kernel_module_names_and_warnings(tmp_path, gradebook):
    course, nb, res = make_course(tmp_path, gradebook, [STUDENT, *TESTS])
    (course / "source" / "ps1" / "gradcheck.py").write_text(CHECKER)
    assert "numpy.f2py.__main__" not in sys.modules
    out = autograde(course, nb, res)
    # only allow-listed modules are imported in the grader; the others stay handles into the kernel
    assert outputs_of(out, "test_modules") == [{"output_type": "stream", "name": "stdout",
                                                "text": "RemoteName RemoteName 4.0\n"}]
    assert "numpy.f2py.__main__" not in sys.modules
    # a warning in the trusted checker on a student value: shown (and still worth zero), but without its path
    warning = outputs_of(out, "test_warning")
    assert warning[0] == {"output_type": "stream", "name": "stderr",
                          "text": "RuntimeWarning: overflow encountered in multiply\n"}
    assert str(course) not in str(warning) and "gradcheck.py" not in str(warning)
    assert grades(out) == {"test_modules": 1, "test_warning": 0}


def test_links_next_to_the_submission_are_not_followed(tmp_path, gradebook):
    listing = _cell("code", """
        import os
        print(sorted(f for f in os.listdir(".") if not f.startswith(".")))
        for name in ("answers.py", "grades.db", "src"):
            try:
                print(name, open(name).read()[:20])
            except OSError as e:
                print(name, type(e).__name__)
        """)
    course, nb, res = make_course(tmp_path, gradebook, [listing, STUDENT, *TESTS])
    student_dir = Path(res["metadata"]["path"])
    os.symlink(course / "source" / "ps1" / "secret_solutions.py", student_dir / "answers.py")
    os.symlink("../../../gradebook.db", student_dir / "grades.db")
    os.symlink(course / "source", student_dir / "src")
    out = autograde(course, nb, res)
    text = out.cells[0].outputs[0]["text"]
    assert text.splitlines() == ["['gradcheck.py', 'nn.py']", "answers.py FileNotFoundError",
                                 "grades.db FileNotFoundError", "src FileNotFoundError"]


def test_missing_release_folder_is_refused(tmp_path, gradebook):
    course, nb, res = make_course(tmp_path, gradebook, [STUDENT, *TESTS])
    shutil.rmtree(course / "release")
    with pytest.raises(ScratchError) as info:
        autograde(course, nb, res)
    assert "\n" not in str(info.value) and "cannot tell student files from instructor files" in str(info.value)
