"""The "Add a question" recipe (docs/instructors.md), followed on a copy of the course: a sixth item, ReLU.backward,
taken from the recipe's code blocks, regenerated with `nbgrader generate_assignment` and graded through the real
`nbgrader autograde` (slow: one small class)."""
import re
import textwrap

import nbformat
import pytest

from conftest import ASSIGNMENT, NOTEBOOK, REPO, make_course, nbgrader, solution_and_hidden_lines
from graded_course import FULL
from grading.reporting import grades as report
from grading.courses import sample_class
from grading.notebook_items import graded_items

pytestmark = pytest.mark.slow


def recipe_blocks():
    """The fenced code blocks of docs/instructors.md's "Add a question" section: [(language, code)], in order."""
    page = (REPO / "docs" / "instructors.md").read_text()
    section = page.split("\n## Add a question\n", 1)[1].split("\n## ", 1)[0]
    return [(lang, textwrap.dedent(code)) for lang, code in re.findall(r"```(\w+)\n(.*?)\n\s*```", section, re.S)]


def follow_recipe(course):
    """Steps 1-3 of the recipe: the registry entry, three notebook cells before "Check everything", the release."""
    (_, entry), (_, task), (_, answer), (_, test) = recipe_blocks()
    engine = course / "source" / ASSIGNMENT / "gradcheck_engine.py"
    text = engine.read_text()
    end = text.index("\n}\n", text.index("\nITEMS = {"))   # the registry's closing brace
    engine.write_text(text[:end] + "\n" + textwrap.indent(entry.rstrip(), "    ") + text[end:])
    path = course / "source" / ASSIGNMENT / NOTEBOOK
    nb = nbformat.read(path, as_version=4)
    at = next(i for i, cell in enumerate(nb.cells) if cell.id == "md-check-all")
    tags = {"tags": ["raises-exception"]}
    nb.cells[at:at] = [
        nbformat.v4.new_markdown_cell(task, id="md-relu"),
        nbformat.v4.new_code_cell(answer, id="relu_backward", metadata={**tags, "nbgrader": {
            "grade": False, "grade_id": "relu_backward", "locked": False, "schema_version": 3, "solution": True,
            "task": False}}),
        nbformat.v4.new_code_cell(test, id="test_relu_backward", metadata={**tags, "nbgrader": {
            "grade": True, "grade_id": "test_relu_backward", "locked": True, "points": 1, "schema_version": 3,
            "solution": False, "task": False}}),
    ]
    nbformat.write(nb, path)
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")


def submit(course, student, relu_backward):
    """submitted/<student>/: every answer the instructor's, ReLU.backward's body replaced by `relu_backward`."""
    answers = sample_class.solution_sources(course / "source" / ASSIGNMENT / NOTEBOOK)
    answers["relu_backward"] = answers["relu_backward"].replace("d_x = d_out * (x > 0)", relu_backward)
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(sample_class.student_notebook(course / "release" / ASSIGNMENT / NOTEBOOK, answers),
                   folder / NOTEBOOK)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("relu") / "course")
    follow_recipe(course)
    submit(course, "right", "d_x = d_out * (x > 0)")
    submit(course, "d_out_ignored", "d_x = 1.0 * (x > 0)")
    nbgrader(course, "autograde", ASSIGNMENT, "--force")
    return course


def test_the_new_item_is_the_notebooks_sixth_with_its_points(course):
    items = graded_items(course / "source" / ASSIGNMENT / NOTEBOOK)
    assert [i.name for i in items] == [*(i.name for i in graded_items()), "ReLU.backward"]
    assert (items[-1].answer_id, items[-1].test_id, items[-1].points) == ("relu_backward", "test_relu_backward", 1.0)
    release = (course / "release" / ASSIGNMENT / NOTEBOOK).read_text()
    stub = next(c for c in nbformat.reads(release, as_version=4).cells if c.id == "relu_backward")
    assert "raise NotImplementedError()" in stub.source and "class ReLU:" in stub.source
    leaked = [line for line in solution_and_hidden_lines(course / "source" / ASSIGNMENT / NOTEBOOK)
              if line in release]
    assert "d_x = d_out * (x > 0)" not in release and not leaked


def test_right_and_wrong_answers_get_exact_scores(course):
    rows = {r.student: r for r in report.load_report(course).rows}
    assert rows["right"].items == {**FULL, "relu": 1.0} and rows["right"].score == sum(FULL.values()) + 1
    # d_out ignored keeps "outputs" (0.25) and "inputs unchanged" (0.125) only
    assert rows["d_out_ignored"].items == {**FULL, "relu": 0.375}
    assert rows["d_out_ignored"].score == sum(FULL.values()) + 0.375
    graded = nbformat.read(course / "autograded" / "d_out_ignored" / ASSIGNMENT / NOTEBOOK, as_version=4)
    shown = "".join(o.get("text", "") for c in graded.cells if c.id == "test_relu_backward" for o in c.outputs)
    assert "d_out ignored" in shown, shown
