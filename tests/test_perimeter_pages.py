"""Issue 21, item 2: student ids and names are data. Through the real entry points: a roster name that is markup
in formgrader's submission view (a running `jupyter server`, headless Chromium), and student ids and grade ids
with markup or escape sequences arriving through `submitted/`, into `nbgrader autograde`'s and `make report`'s
terminal output (grading/student_ids.py, grading/terminal.py, grading/templates/formgrade/).

PAGE_ATTACKS and TERMINAL_ATTACKS are the catalog; each fails on a bundle without the fix (slow: a small class is
autograded and formgrader started).
"""
import csv
import io
import shutil
import subprocess
import sys

import nbformat
import pytest
from conftest import ASSIGNMENT, NOTEBOOK, make_course, nbgrader, write_test_secret
from hostile_catalog import PWN
from test_html_safety import CHROMIUM, _submission_id, browser, formgrader, visit  # noqa: F401 -- fixtures

from grading.course import COURSE_ID

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM, reason="no Chromium")]
MARKUP = f'<img src=x onerror="{PWN}">'
ESCAPES = "\x1b]0;pwned\x07\x1b[2J"
PAGE_ATTACKS = {   # student: (first name, last name) in the roster
    "rosa": ("Rosa", MARKUP),
    "fred": (MARKUP, "Fred"),
}
TERMINAL_ATTACKS = {   # folder in submitted/ (a student id arriving there), or a student whose cell's grade_id
    "markup-id": f"<img src=x onerror={PWN.replace(' ', '')}>",
    "escape-id": f"evil{ESCAPES}",
}
GRADE_ID_STUDENT = "gina"   # her submission adds a graded cell whose grade_id carries escape sequences


def roster(course):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "first_name", "last_name", "email", "lms_user_id"])
    for student, (first, last) in PAGE_ATTACKS.items():
        writer.writerow([student, first, last, f"{student}@uni.example", ""])
    writer.writerow([GRADE_ID_STUDENT, "Gina", "Id", "gina@uni.example", ""])
    (course / "roster.csv").write_text(out.getvalue())
    subprocess.run([sys.executable, "-m", "grading.cli.roster", "roster.csv", "--course", str(course)], cwd=course,
                   check=True, capture_output=True)


def with_hostile_grade_id(folder):
    nb = nbformat.read(folder / NOTEBOOK, as_version=4)
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": False, "points": 1,
                                 "grade_id": f"test_evil{ESCAPES}", "schema_version": 3}
    nb.cells.append(cell)
    nbformat.write(nb, folder / NOTEBOOK)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("pages") / "course")
    write_test_secret(course)
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    roster(course)
    release = course / "release" / ASSIGNMENT
    for student in [*PAGE_ATTACKS, GRADE_ID_STUDENT, *TERMINAL_ATTACKS.values()]:
        shutil.copytree(release, course / "submitted" / student / ASSIGNMENT)
    with_hostile_grade_id(course / "submitted" / GRADE_ID_STUDENT / ASSIGNMENT)
    autograde = nbgrader(course, "autograde", ASSIGNMENT, check=False)
    report = subprocess.run([sys.executable, "-m", "grading.cli.report", "--course", str(course)], cwd=course,
                            text=True, capture_output=True, timeout=600)
    course.joinpath("terminal.txt").write_text(autograde.stdout + autograde.stderr + report.stdout + report.stderr)
    return course


@pytest.fixture(scope="module")
def terminal(graded):
    return (graded / "terminal.txt").read_text()


@pytest.mark.parametrize("student", list(PAGE_ATTACKS))
def test_a_roster_name_is_text_in_formgraders_submission_view(graded, formgrader, browser, student):  # noqa: F811
    base, token = formgrader
    url = f"{base}/formgrader/submissions/{_submission_id(graded, student)}/?token={token}"
    seen = visit(browser, url, f"perimeter_formgrader_{student}.png")
    assert (seen["title"], seen["pwned"], seen["dialogs"]) == ("backprop", None, [])


@pytest.mark.parametrize("attack", list(TERMINAL_ATTACKS))
def test_an_id_that_is_not_a_student_id_is_refused_at_autograde(graded, terminal, attack):
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}", COURSE_ID) as gb:
        assert TERMINAL_ATTACKS[attack] not in {s.id for s in gb.students}
    assert any("student id" in line and "refused" in line for line in terminal.splitlines())


def test_no_escape_sequence_reaches_the_terminal(terminal):
    assert "\x1b" not in terminal and "\x07" not in terminal
    assert "\\x1b" in terminal   # shown, as text


def test_a_grade_id_is_text_in_the_feedback_template(browser, tmp_path):  # noqa: F811
    """The feedback template as nbgrader_config.py sets it up (grading/templates/ first), without the page's
    Content-Security-Policy: the escaping alone keeps a grade_id that is markup from running."""
    from nbconvert import HTMLExporter
    from test_html_safety import NBGRADER_TEMPLATES, RELEASE_DIR
    from traitlets.config import Config

    from grading.courses.course_dir import REPO
    nb = nbformat.read(RELEASE_DIR / NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
    cell.metadata.nbgrader.grade_id = f'x"><img src=x onerror="{PWN}">'
    for graded in (c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")):
        graded.metadata.nbgrader.score = 0.0   # what nbgrader's GetGrades adds from the gradebook
    exporter = HTMLExporter(config=Config({"HTMLExporter": {
        "template_name": "feedback",
        "extra_template_basedirs": [str(REPO / "grading" / "templates"), str(NBGRADER_TEMPLATES)],
        "extra_template_paths": [str(NBGRADER_TEMPLATES.parent / "static" / "node_modules" / "bootstrap" / "dist" /
                                     "css")]}}))
    resources = {"nbgrader": {"notebook": "backprop", "score": 1.0, "max_score": 10.0, "late_penalty": 0.0}}
    page = tmp_path / "feedback.html"
    page.write_text(exporter.from_notebook_node(nb, resources=resources)[0])
    seen = visit(browser, page.as_uri())
    assert (seen["title"], seen["pwned"], seen["dialogs"]) == ("backprop", None, [])


@pytest.mark.parametrize("page", ["manage_students/{}", "manage_students/rosa/{}", f"gradebook/{ASSIGNMENT}/{{}}"])
def test_formgraders_own_pages_print_no_value_from_the_url_raw(graded, formgrader, browser, page):  # noqa: F811
    """nbgrader renders these pages without autoescaping (grading/plugins/formgrader_pages.py turns it on)."""
    from urllib.parse import quote
    base, token = formgrader
    payload = quote(f'";{PWN};"</script><img src=x onerror="{PWN}">', safe="")
    seen = visit(browser, f"{base}/formgrader/{page.format(payload)}/?token={token}")
    assert (seen["pwned"], seen["dialogs"]) == (None, []) and seen["title"] != "PWNED"


def test_formgraders_own_pages_still_work(graded, formgrader, browser):  # noqa: F811
    base, token = formgrader
    context = browser.new_context(extra_http_headers={"Authorization": f"token {token}"})   # for its API calls
    try:
        page = context.new_page()
        page.goto(f"{base}/formgrader/manage_students/?token={token}")
        page.wait_for_selector("text=rosa", timeout=30000)   # the table is filled by the page's own scripts
        assert "Rosa" in page.inner_text("body")
    finally:
        context.close()
