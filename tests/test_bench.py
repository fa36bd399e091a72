"""The class benchmark's own parts (benchmarks/bench_class.py): the stock course it compares against grades a
correct submission with full marks, the compute floor runs the ordinary cells only, grades are compared per cell.
The benchmark's figures themselves are never asserted here: speed claims live in the benchmark's output."""
import sys

import nbformat
from nbgrader.utils import is_grade, is_solution

from conftest import ASSIGNMENT, NOTEBOOK, REPO
from grading.notebook_items import graded_items

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_class  # noqa: E402
import compute_floor  # noqa: E402

FULL_POINTS = {item.test_id: item.points for item in graded_items()}   # from the source notebook


def test_stock_course_grades_the_instructors_answers_with_full_marks(tmp_path):
    """(s) is real stock nbgrader: no grading/ plugins, hidden tests in the kernel, exact full marks."""
    course = bench_class.stock_course(tmp_path / "stock", 1)
    assert not (course / "grading").exists()
    assert "grading" not in (course / "nbgrader_config.py").read_text().replace("benchmarks/bench_class.py", "")
    bench_class.time_autograde(course)
    grades = bench_class.gradebook_grades(course)
    assert grades == {"s001": {**FULL_POINTS, "late penalty": None}}   # stock assigns no late penalty at all
    assert bench_class.full_marks(course, grades) == 1


def test_compute_floor_runs_every_ordinary_cell_and_no_test_cell(tmp_path):
    course = bench_class.copy_course(bench_class.stock_course(tmp_path / "stock", 2), tmp_path / "copy", keep=1)
    assert [p.name for p in (course / "submitted").iterdir()] == ["s001"]
    nb_path = course / "submitted" / "s001" / ASSIGNMENT / NOTEBOOK
    sources = compute_floor.ordinary_sources(nb_path)
    cells = [c for c in nbformat.read(nb_path, as_version=4).cells if c.cell_type == "code"]
    tests = [c.source for c in cells if is_grade(c) and not is_solution(c)]
    assert len(tests) == len(FULL_POINTS) and len(sources) == len(cells) - len(tests)
    assert not set(tests) & set(sources)
    assert "import sklearn" not in compute_floor.import_statements(sources)  # imports as written, not guessed
    assert "from sklearn.datasets import load_digits" in compute_floor.import_statements(sources)
    floor = bench_class.measure_floor(course / "submitted")
    assert floor["notebooks"] == 1 and floor["seconds"] > 0


def test_grade_differences_name_the_student_and_the_cell():
    same = {"s001": {"test_sum_backward": 1.0, "late penalty": 0.0}}
    assert bench_class.grade_differences(same, same) == []
    other = {"s001": {"test_sum_backward": 0.5, "late penalty": 0.0}}
    assert bench_class.grade_differences(same, other) == ["s001: test_sum_backward: 1.0 vs 0.5"]
    assert bench_class.grade_differences(same, {}) == ["s001: graded in only one run"]


def test_verdicts_say_pass_or_miss_and_by_how_much():
    assert bench_class.verdict("(s)/(p)", 2.0, 4.0, at_least=True).endswith("MISS (missed by 2.00x)")
    assert bench_class.verdict("(p)/(f)", 4.0, 5.0, at_least=False).endswith("PASS (met)")
    assert bench_class.verdict("(a)/(s)", 1.5, 1.0, at_least=False).endswith("MISS (missed by 1.50x)")
