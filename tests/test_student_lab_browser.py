"""The student's JupyterLab (`make student`, grading/student_lab/), driven in headless Chromium by Playwright as a
student would use it: open the released notebook, Run All, read the check-everything table, fix the answers,
Run All again, press Validate.

Answers are pasted by writing the notebook file (its page closed, its kernel shut down, then a fresh page opened:
typing code into cells through the UI is slow and fragile); Run All and Validate are clicked in the real menu and
toolbar.
Screenshots land in test-artifacts/student_lab_*.png for a human to look at.
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from conftest import ASSIGNMENT, CHROMIUM, NOTEBOOK, RELEASE_DIR, REPO, SOURCE_NB, free_port
from graded_course import tree_digest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from test_instructor_notebook import SEED_TEST

from grading.reporting.mistakes import REGISTRY_MODULE
from grading.courses.sample_class import bug_catalog, solution_sources, student_notebook
from grading.course import TRUSTED_MODULES
from grading.trusted.modules import TrustedModules

ARTIFACTS = REPO / "test-artifacts"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (make system-deps)")]

# The checker's items and their points, from its registry (the trusted copy in source/).
ITEMS = TrustedModules(names=list(TRUSTED_MODULES), dir_templates=[str(SOURCE_NB.parent), str(REPO)]).load(
    REGISTRY_MODULE).ITEMS
TOTAL = sum(spec.total for spec in ITEMS.values())
# window.jupyterapp, so the test can wait for the Lab to be ready and ask which commands it has (Galata does the same).
TEST_LAB_OPTIONS = ["--ServerApp.open_browser=False", "--LabApp.expose_app_in_browser=True"]
NBGRADER_COMMANDS = ["nbgrader:open-formgrader", "nbgrader:open-create-assignment", "nbgrader:open-course-list",
                     "nbgrader:open-assignment-list"]
RUN_ALL_SECONDS = 600  # training twice plus every check, on a loaded 2-core machine

# What the browser shows of the check-everything table: per row, its cells' text and the colour of its ✓/✗ mark.
READ_TABLE = """table => [...table.querySelectorAll("tr")].map(tr => {
  const marks = [...tr.querySelectorAll("*")].filter(e => ["✓", "✗"].includes(e.textContent.trim()));
  const mark = marks.length ? marks[marks.length - 1] : null;
  return {cells: [...tr.querySelectorAll("td, th")].map(c => c.textContent.replace(/\\s+/g, " ").trim()),
          text: [...tr.querySelectorAll("td, th")].map(c => c.textContent).join(" ").replace(/\\s+/g, " ").trim(),
          mark: mark ? mark.textContent.trim() : null,
          color: mark ? getComputedStyle(mark).color : null};
})"""


class Lab:
    """A running JupyterLab server: its URL, token, directory and process."""

    def __init__(self, work, cmd, log):
        self.work, self.port, self.token = work, free_port(), "t" + str(time.time_ns())
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(cmd(self.port, self.token), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        self.log = log.name
        deadline = time.monotonic() + 180
        while not self._up():
            assert self.proc.poll() is None and time.monotonic() < deadline, \
                f"JupyterLab did not start:\n{Path(self.log).read_text()[-3000:]}"
            time.sleep(0.5)

    def _up(self):
        try:
            return self.api("GET", "api/status") is not None
        except OSError:
            return False

    def request(self, method, path):
        """The body of the server's answer; HTTPError for a 4xx/5xx."""
        request = urllib.request.Request(f"{self.url}/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def api(self, method, path):
        """The REST API's JSON answer (None when empty)."""
        body = self.request(method, path)
        return json.loads(body) if body else None

    def status(self, path, method="GET"):
        try:
            self.request(method, path)
            return 200
        except urllib.error.HTTPError as e:
            return e.code

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture(scope="module")
def student_lab(tmp_path_factory):
    """`make student`'s command, on a copy of the release in a temporary directory."""
    work = tmp_path_factory.mktemp("student-work")
    release_digest = tree_digest(RELEASE_DIR)
    with open(work.parent / "student-lab.log", "w") as log:
        lab = Lab(work, lambda port, token: [sys.executable, "-m", "grading.student_lab", "--work", str(work),
                                             "--port", str(port), "--token", token,
                                             "--", *TEST_LAB_OPTIONS], log)
        lab.release_digest = release_digest
        yield lab
        lab.stop()


def open_lab(lab, browser, path=""):
    """A fresh browser page on the Lab (no restored workspace), with the Lab's UI loaded."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(f"{lab.url}/lab{'/tree/' + path if path else ''}?reset&token={lab.token}")
    page.wait_for_function("() => window.jupyterapp !== undefined")
    page.evaluate("() => window.jupyterapp.restored")  # every plugin is activated, the layout restored
    return page


def has_command(page, command):
    return page.evaluate("id => window.jupyterapp.commands.hasCommand(id)", command)


def open_notebook(lab, browser, nb):
    """Write `nb` as the student's notebook, shut down every kernel, and open it in a fresh page."""
    for session in lab.api("GET", "api/sessions"):
        lab.api("DELETE", f"api/sessions/{session['id']}")
    nbformat.write(nb, lab.work / ASSIGNMENT / NOTEBOOK)
    page = open_lab(lab, browser, f"{ASSIGNMENT}/{NOTEBOOK}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=120_000)
    return page


def sidebar_tabs(page):
    return page.locator(".jp-SideBar .lm-TabBar-tab").evaluate_all("tabs => tabs.map(t => t.title)")


def menu_labels(page):
    return [t.strip() for t in page.locator(".lm-MenuBar-itemLabel").all_inner_texts()]


def open_menu(page, menu):
    """Open a menu of the menu bar; return the labels of its visible entries."""
    entries = page.locator(".lm-Menu-item:visible .lm-Menu-itemLabel")
    for _ in range(3):  # a click that lands while the menu bar is still busy opens nothing: try again
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
        try:
            entries.first.wait_for(timeout=5000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    return [t.strip() for t in entries.all_inner_texts()]


def click_menu(page, menu, item):
    assert item in open_menu(page, menu), (menu, item)
    page.locator(".lm-Menu-item:visible .lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")).click()


def run_all(page):
    """Run > Run All Cells, then wait until the kernel is idle with no cell left to run."""
    page.locator(".jp-NotebookPanel .jp-Notebook").click(position={"x": 5, "y": 5})  # the notebook has focus
    click_menu(page, "Run", "Run All Cells")
    page.wait_for_function(
        """() => {
             const busy = [...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'));
             const idle = document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]');
             return idle && !busy;
           }""", timeout=RUN_ALL_SECONDS * 1000, polling=1000)


def summary(page):
    """The check-everything table as shown: rows of the five items, then the total line."""
    table = page.locator("table.gradcheck-summary")
    assert table.count() == 1, "no check-everything table (table.gradcheck-summary) after Run All"
    table.scroll_into_view_if_needed()
    rows = table.evaluate(READ_TABLE)
    items = [r for r in rows if r["mark"] and any(item in r["cells"] for item in ITEMS)]
    assert [next(item for item in ITEMS if item in r["cells"]) for r in items] == list(ITEMS), rows
    return {next(item for item in ITEMS if item in r["cells"]): r for r in items}, rows[-1]["text"]


def rgb(css):
    return tuple(int(v) for v in re.findall(r"\d+", css)[:3])


def is_red(css):
    r, g, b = rgb(css)
    return r >= 150 and r > g + 60 and r > b + 60


def is_green(css):
    r, g, b = rgb(css)
    return g >= 100 and g > r + 40 and g > b + 20


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(1000)  # cells scrolled into view are painted (the notebook skips off-screen ones)
    page.screenshot(path=str(ARTIFACTS / f"student_lab_{name}.png"))


def answers(**mistakes):
    """Every answer cell's correct code (the source notebook's solution), with the named catalog bugs put in."""
    code = solution_sources(SOURCE_NB)
    bugs = bug_catalog()
    return {cell: bugs[bug].source if bug else src for cell, src in code.items() for bug in [mistakes.get(cell)]}


def test_student_lab_has_validate_and_no_instructor_tools(student_lab, browser):
    page = open_notebook(student_lab, browser, nbformat.read(RELEASE_DIR / NOTEBOOK, as_version=4))
    screenshot(page, "opened")
    assert "Nbgrader" not in menu_labels(page)  # its only entries are instructor tools and course lists
    assert [c for c in NBGRADER_COMMANDS if has_command(page, c)] == []
    assert not [t for t in sidebar_tabs(page) if "Create Assignment" in t]
    assert page.locator(".jp-NotebookPanel-toolbar .validate-button").is_visible()
    # The server side: no formgrader, course list or assignment list; the Validate endpoint is there.
    assert [student_lab.status(p) for p in ["formgrader", "courses", "assignments"]] == [404] * 3
    assert student_lab.status("assignments/validate") == 405  # it takes POST only
    page.close()


def test_instructor_lab_keeps_every_nbgrader_tool(tmp_path, browser):
    """Control for the test above: the same selectors find the tools in a plain `jupyter lab`."""
    with open(tmp_path / "lab.log", "w") as log:
        root = ["--allow-root"] if os.geteuid() == 0 else []
        lab = Lab(tmp_path, lambda port, token: [str(Path(sys.executable).parent / "jupyter"), "lab",
                                                 f"--ServerApp.root_dir={tmp_path}", f"--port={port}",
                                                 f"--IdentityProvider.token={token}", *TEST_LAB_OPTIONS, *root], log)
        try:
            page = open_lab(lab, browser)
            assert "Nbgrader" in menu_labels(page)
            items = open_menu(page, "Nbgrader")
            assert {"Formgrader", "Assignment List", "Course List"} <= set(items), items
            page.keyboard.press("Escape")
            assert all(has_command(page, c) for c in NBGRADER_COMMANDS)
            assert [t for t in sidebar_tabs(page) if "Create Assignment" in t]
            assert lab.status("formgrader") == 200
            page.close()
        finally:
            lab.stop()


def run_all_and_check_everything(lab, browser, nb, name):
    """Open `nb` as the student's notebook, click Run All; return the page and the check-everything table."""
    page = open_notebook(lab, browser, nb)
    run_all(page)
    rows, total = summary(page)
    screenshot(page, name)
    return page, rows, total


def test_run_all_on_the_release_reaches_the_check_everything_table(student_lab, browser):
    page, rows, total = run_all_and_check_everything(
        student_lab, browser, nbformat.read(RELEASE_DIR / NOTEBOOK, as_version=4), "release_run_all")
    assert total == f"Public checks: 0/{TOTAL:g} points"
    for item, row in rows.items():
        assert row["mark"] == "✗" and is_red(row["color"]), (item, row)
        assert f"0/{ITEMS[item].total:g}" in row["cells"], (item, row)
    page.close()


def test_correct_answers_get_10_of_10_the_seed_numbers_and_pass_validate(student_lab, browser):
    page, rows, total = run_all_and_check_everything(
        student_lab, browser, student_notebook(RELEASE_DIR / NOTEBOOK, answers()), "correct_10_of_10")
    assert total == f"Public checks: {TOTAL:g}/{TOTAL:g} points"
    for item, row in rows.items():
        assert row["mark"] == "✓" and is_green(row["color"]), (item, row)
    passes = page.locator(".jp-OutputArea-output .gradcheck-pass")
    assert passes.count() >= len(ITEMS) and all(is_green(c) for c in passes.evaluate_all(
        "els => els.map(e => getComputedStyle(e).color)"))
    assert page.locator(".jp-OutputArea-output .gradcheck-fail").count() == 0
    # Both training loops end at the seed's numbers.
    outputs = page.locator(".jp-OutputArea-output").all_text_contents()
    assert sum(SEED_TEST.strip() in text for text in outputs) == 2, [t for t in outputs if "loss_test" in t]

    page.locator(".jp-NotebookPanel-toolbar .validate-button").click()
    message = page.locator("#validation-message")
    message.wait_for(timeout=RUN_ALL_SECONDS * 1000)
    screenshot(page, "validate_success")
    assert "validation-success" in message.get_attribute("class"), message.inner_text()
    assert message.inner_text().strip() == "Success! Your notebook passes all the tests."
    page.close()


def test_a_typical_mistake_is_named_in_red(student_lab, browser):
    nb = student_notebook(RELEASE_DIR / NOTEBOOK, answers(nll_grad="nll_grad_missing_1_over_n"))
    page, rows, total = run_all_and_check_everything(student_lab, browser, nb, "mistake_table")
    kept, possible = bug_catalog()["nll_grad_missing_1_over_n"].expected_points, ITEMS["nll_grad"].total
    assert total == f"Public checks: {TOTAL - possible + kept:g}/{TOTAL:g} points"  # 8/10: "outputs" and
    # "inputs unchanged" still count
    named = page.locator(".jp-OutputArea-output .gradcheck-fail", has_text="missing 1/N")
    assert named.count() >= 1
    named.first.scroll_into_view_if_needed()
    screenshot(page, "mistake_missing_1_over_n")
    assert "nll_grad" in named.first.inner_text() and is_red(named.first.evaluate("e => getComputedStyle(e).color"))
    assert rows["nll_grad"]["mark"] == "✗" and is_red(rows["nll_grad"]["color"])
    assert "missing 1/N" in rows["nll_grad"]["text"] and f"{kept:g}/{possible:g}" in rows["nll_grad"]["cells"]
    for item in set(ITEMS) - {"nll_grad"}:
        assert rows[item]["mark"] == "✓" and is_green(rows[item]["color"]), rows[item]
    page.close()


def test_release_is_never_edited(student_lab):
    """The Lab ran Run All and Validate on its copy: release/ is byte for byte what it was."""
    assert tree_digest(RELEASE_DIR) == student_lab.release_digest
    assert not (RELEASE_DIR / ".ipynb_checkpoints").exists()
