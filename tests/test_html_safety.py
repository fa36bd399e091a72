"""Student HTML is never live: not in the feedback page, not in formgrader's submission view (real headless
Chromium through Playwright, no network).

Every payload of the catalog's live-HTML entries (tests/hostile_catalog.py: html-outputs, html-markdown,
forged-notes) sets ``document.title`` and ``window.__pwned`` if it ever runs. First, on a notebook carrying those
payloads as outputs and cells (no kernel), the two defences are proven separately: uncleaned under nbgrader's
own feedback template the payloads run; the bundle's Content-Security-Policy alone blocks them; grading's
cleaning alone (CleanStudentHtml, what formgrader gets) leaves nothing to run. Then, end to end (slow): those
students are autograded by `nbgrader autograde`, their feedback written by `grading.cli.feedback`, and both the
feedback pages and formgrader's real submission view (a running `jupyter server` on localhost) stay inert.
Screenshots go to test-artifacts/.
"""
import copy
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import nbgrader
import pytest
from nbconvert import HTMLExporter
from traitlets.config import Config

from conftest import ASSIGNMENT, BIN, REPO, RELEASE_DIR, SOURCE_NB, nbgrader as run_nbgrader
from grading.courses.sample_class import solution_sources
from grading.plugins.clean_html import CleanStudentHtml, clean_html, inert_markdown
from grading.plugins.feedback_page import OfflineFeedbackPage
from hostile_catalog import CHEATS, HTML_ERROR, PNG_1PX, PWN, Context, html_markdown
from hostile_course import LIVE_MARKUP as LIVE, build_class

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
NBGRADER_TEMPLATES = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"
LIVE_HTML = ["html-outputs", "html-markdown", "forged-notes"]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="/usr/bin/chromium is missing")



def hostile_outputs():
    """The outputs html-outputs' cell produces in a kernel, written down (display, markdown, JavaScript, SVG,
    an isolated frame, an image whose width is markup, an error whose message is markup)."""
    new = nbformat.v4
    return [
        new.new_output("display_data", {"text/html": f'<b>bold stays</b><img src=x onerror="{PWN}"><script>{PWN}'
                                                     "</script>", "text/plain": "<HTML>"}),
        new.new_output("display_data", {"text/markdown": f'*markdown* <img src=x onerror="{PWN}">'}),
        new.new_output("display_data", {"application/javascript": PWN, "text/plain": "<JS>"}),
        new.new_output("display_data", {"image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg" onload="{PWN}">'
                                                         "</svg>"}),
        new.new_output("display_data", {"text/html": f"<script>{PWN}</script>"},
                       metadata={"text/html": {"isolated": True}}),
        new.new_output("display_data", {"image/png": PNG_1PX}, metadata={"image/png": {"width": f"1 onerror={PWN}"}}),
        new.new_output("error", ename="ValueError", evalue=HTML_ERROR, traceback=[HTML_ERROR]),
    ]


@pytest.fixture(scope="module")
def hostile_nb(tmp_path_factory):
    """The release with html-markdown's cells and html-outputs' outputs (in an extra code cell)."""
    folder = tmp_path_factory.mktemp("hostile") / ASSIGNMENT
    html_markdown(Context(RELEASE_DIR, solution_sources(SOURCE_NB)), folder)
    nb = nbformat.read(folder / "backprop.ipynb", as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell("# outputs of html-outputs", outputs=hostile_outputs()))
    return nb


def cleaned(nb):
    """CleanStudentHtml, as the course's autograde runs it (release/ of this repository)."""
    step = CleanStudentHtml(config=Config({"CourseDirectory": {"root": str(REPO)}}))
    return step.preprocess(copy.deepcopy(nb), {"nbgrader": {"assignment": ASSIGNMENT, "notebook": "backprop"}})[0]


def feedback_html(nb, with_csp):
    """The notebook rendered with nbgrader's feedback template: by the bundle's feedback exporter (its
    Content-Security-Policy and MathJax's two script files) or by nbconvert's HTMLExporter (stock nbgrader)."""
    bootstrap = NBGRADER_TEMPLATES.parent / "static" / "node_modules" / "bootstrap" / "dist" / "css"
    exporter_class = OfflineFeedbackPage if with_csp else HTMLExporter
    exporter = exporter_class(config=Config({exporter_class.__name__: {  # as nbgrader's GenerateFeedback sets it up
        "template_name": "feedback", "extra_template_basedirs": [str(NBGRADER_TEMPLATES)],
        "extra_template_paths": [str(bootstrap)]}}))
    nb = copy.deepcopy(nb)
    for cell in nb.cells:  # what nbgrader's GetGrades adds from the gradebook
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.metadata.nbgrader.score = 0.0
    resources = {"nbgrader": {"notebook": "backprop", "score": 1.0, "max_score": 10.0, "late_penalty": 0.0}}
    return exporter.from_notebook_node(nb, resources=resources)[0]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def visit(browser, url, screenshot=None):
    """Load `url` offline (only file:// and localhost) and report what ran: title, window.__pwned, dialogs,
    Content-Security-Policy violations, and the page's text."""
    context = browser.new_context()
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.route(re.compile(r"^(?!file:|http://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
    page.add_init_script("window.__violations = []; document.addEventListener('securitypolicyviolation', "
                         "e => window.__violations.push(e.violatedDirective));")
    page.goto(url, wait_until="load")
    page.wait_for_timeout(1000)  # error handlers of broken images, onload of frames
    seen = {"title": page.title(), "pwned": page.evaluate("window.__pwned"), "dialogs": dialogs,
            "violations": page.evaluate("window.__violations"), "text": page.inner_text("body")}
    if screenshot:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    context.close()
    return seen


def script_violations(seen):
    """The page's CSP violations, but for font-src: bootstrap's own stylesheet names its icon fonts by URL."""
    return [v for v in seen["violations"] if v != "font-src"]


def test_cleaning_leaves_text_tables_and_images_and_nothing_live():
    assert clean_html("<b>bold</b><table><tr><td>1</td></tr></table>") == \
        "<b>bold</b><table><tbody><tr><td>1</td></tr></tbody></table>"
    png = f'<img src="data:image/png;base64,{PNG_1PX}" alt="plot">'
    assert clean_html(png) == png
    for html in [f'<img src=x onerror="{PWN}">', f"<script>{PWN}</script>", f'<a href="javascript:{PWN}">x</a>',
                 f'<a href="JaVa&#x53;cript:{PWN}">x</a>', f'<svg onload="{PWN}">', '<img src="https://t.example/x">',
                 f'<iframe src="data:text/html,<script>{PWN}</script>">', '<a href="data:text/html,x">x</a>']:
        cleaned_html = clean_html(html)
        assert not LIVE.search(cleaned_html) and not re.search(r'<[a-z]+[^>]*\s(src|href)="(https|data):', cleaned_html)
    md = inert_markdown(f"# Title\n\n<script>{PWN}</script>\n\n[x](javascript:{PWN})\n\n"
                        f"```mermaid\n</pre><img src=x onerror=\"{PWN}\">\n```")
    assert md.startswith("<div>") and "\n" not in md and not LIVE.search(md) and "<h1" in md
    # text the renderer cannot take (a missing attachment) is shown as a plain code block
    assert inert_markdown("![x](attachment:missing.png)") == "```text\n![x](attachment:missing.png)\n```"


def test_cleaning_keeps_the_instructors_cells_and_the_grader_outputs(hostile_nb):
    nb = cleaned(hostile_nb)
    release = nbformat.read(RELEASE_DIR / "backprop.ipynb", as_version=4)
    kept = {c.source for c in release.cells if c.cell_type == "markdown"}
    assert [c.source for c in nb.cells if c.source in kept] == [c.source for c in hostile_nb.cells if c.source in kept]
    outputs = nb.cells[1].outputs
    assert [sorted(o.get("data", {})) for o in outputs[:6]] == [
        ["text/html", "text/plain"], ["text/html"], ["text/plain"], ["text/plain"], ["text/html"], ["image/png"]]
    assert outputs[2].data["text/plain"] == "<JS>"
    assert outputs[3].data["text/plain"] == "[image/svg+xml output not shown]"
    assert [o.get("metadata") for o in outputs[:6]] == [{}] * 6 and outputs[6] == hostile_nb.cells[1].outputs[6]


def test_uncleaned_payloads_run_and_each_defence_alone_stops_them(hostile_nb, browser, tmp_path):
    pages = {"raw-nbgrader": feedback_html(hostile_nb, False),
             "raw-with-csp": feedback_html(hostile_nb, True),
             "cleaned-nbgrader": feedback_html(cleaned(hostile_nb), False),
             "cleaned-with-csp": feedback_html(cleaned(hostile_nb), True)}
    seen = {}
    for name, html in pages.items():
        (tmp_path / f"{name}.html").write_text(html)
        seen[name] = visit(browser, (tmp_path / f"{name}.html").as_uri(), f"html_safety_{name}.png")
    assert seen["raw-nbgrader"]["title"] == "PWNED" and seen["raw-nbgrader"]["pwned"] == 1  # the payloads are live
    assert seen["raw-with-csp"]["violations"] and "script-src-elem" in seen["raw-with-csp"]["violations"]
    for name in ("raw-with-csp", "cleaned-nbgrader", "cleaned-with-csp"):
        assert (seen[name]["title"], seen[name]["pwned"], seen[name]["dialogs"]) == ("backprop", None, []), name
    assert script_violations(seen["cleaned-with-csp"]) == []  # cleaned: nothing even tries
    assert "bold stays" in seen["cleaned-with-csp"]["text"] and "<script>" in seen["cleaned-with-csp"]["text"]
    assert not LIVE.search(pages["cleaned-nbgrader"].split("<body", 1)[1])


# ------------------------------------------------------------------------------------- end to end (slow) ----

@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The live-HTML students and an honest one, autograded by `nbgrader autograde`, with their feedback."""
    course = build_class(tmp_path_factory.mktemp("html") / "course", [e for e in CHEATS if e.name in LIVE_HTML])
    run_nbgrader(course, "autograde", ASSIGNMENT, "--force")
    proc = subprocess.run([sys.executable, "-m", "grading.cli.feedback"], cwd=course, text=True,
                          capture_output=True, timeout=600)
    assert proc.returncode == 0 and "feedback: 4/4 pages" in proc.stdout, proc.stdout + proc.stderr
    return course


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def formgrader(graded):
    """A real Jupyter server with nbgrader's formgrader on localhost, serving the graded course."""
    port, token = _free_port(), "formgrader-test-token"
    server = subprocess.Popen([str(BIN / "jupyter"), "server", "--allow-root", "--no-browser", f"--port={port}",
                               "--ip=127.0.0.1", f"--IdentityProvider.token={token}"], cwd=graded,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/formgrader/?token={token}", timeout=5)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "formgrader did not start"
                time.sleep(1)
        yield base, token
    finally:
        server.terminate()
        server.wait(timeout=30)


def _submission_id(course, student):
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "ex09-backprop") as gb:
        return gb.find_submission_notebook("backprop", ASSIGNMENT, student).id


@pytest.mark.slow
@pytest.mark.parametrize("student", LIVE_HTML)
def test_feedback_page_of_a_hostile_student_runs_nothing(graded, browser, student):
    page = graded / "feedback" / student / ASSIGNMENT / "backprop.html"
    html = page.read_text()
    head, body = html.split("</head>", 1)
    assert 'http-equiv="Content-Security-Policy"' in head
    # MathJax's two files are the only scripts, and the policy comes before them
    assert re.findall(r"<script[^>]*>", head) == ['<script src="../../mathjax/config.js">',
                                                  '<script src="../../mathjax/tex-svg-full.js">']
    assert head.index("Content-Security-Policy") < head.index("<script")
    assert not LIVE.search(body)
    seen = visit(browser, page.as_uri(), f"feedback_{student}_hostile.png")
    assert (seen["title"], seen["pwned"], seen["dialogs"], script_violations(seen)) == ("backprop", None, [], [])
    assert "backprop (Score:" in seen["text"]


@pytest.mark.slow
@pytest.mark.parametrize("student", LIVE_HTML)
def test_formgrader_submission_view_of_a_hostile_student_runs_nothing(graded, formgrader, browser, student):
    base, token = formgrader
    url = f"{base}/formgrader/submissions/{_submission_id(graded, student)}/?token={token}"
    seen = visit(browser, url, f"formgrader_{student}.png")
    assert (seen["title"], seen["pwned"], seen["dialogs"]) == ("backprop", None, [])
    assert re.search(r"Submission \d / 4", seen["text"])  # formgrader's own page, with the student's notebook
    if student == "html-outputs":
        assert "bold stays" in seen["text"]
    if student == "html-markdown":
        assert f"<script>{PWN}</script>" in seen["text"]  # shown as text, for the instructor to see
