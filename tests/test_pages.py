"""The pages people read, in headless Chromium with every request off this machine refused: the feedback page
renders its formulas with the local MathJax (feedback/mathjax/, grading/plugins/feedback_page.py), and both the
feedback page and formgrader, served by a real Jupyter server on localhost, show the checker's longest
diagnosis lines whole (grading/plugins/wrap_output.py). Screenshots go to test-artifacts/.
"""
import json
import os
import subprocess
import time
import urllib.request

import pytest
from conftest import ASSIGNMENT, BIN, CHROMIUM, REPO, free_port
from graded_course import graded_course  # noqa: F401

ARTIFACTS = REPO / "test-artifacts"
LONG_LINE = "d_y: outputs swapped"  # dev's Multiply diagnosis: longer than the page is wide
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (make system-deps)")

# Every <pre> holding the text: is it wider than its box (cut off), and how far does its text reach to the right?
CLIPPED = """text => [...document.querySelectorAll('pre')].filter(p => p.textContent.includes(text)).map(p => ({
  cut: p.scrollWidth > p.clientWidth + 1,
  beyond: Math.max(...[...p.getClientRects()].map(r => r.right)) > document.documentElement.clientWidth}))"""


def offline_page(browser, allowed_prefix="file:"):
    """A page that refuses (and records) every request not starting with `allowed_prefix`."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.refused = []

    def refuse(route):
        page.refused.append(route.request.url)
        route.abort()
    page.route(lambda url: not url.startswith(allowed_prefix), refuse)
    return page


def test_feedback_formulas_render_offline_from_the_local_mathjax(browser, graded_course):  # noqa: F811
    page_path = graded_course / "feedback" / "dev" / ASSIGNMENT / "backprop.html"
    assert '<script src="../../mathjax/tex-svg-full.js"></script>' in page_path.read_text()
    assert (graded_course / "feedback" / "mathjax" / "tex-svg-full.js").stat().st_size > 1_000_000
    page = offline_page(browser)
    page.goto(page_path.as_uri())
    page.wait_for_function("() => document.querySelectorAll('mjx-container').length > 10", timeout=30000)
    assert page.refused == []  # nothing asked of any CDN
    text = page.evaluate("document.body.innerText")
    assert "\\mathbf" not in text and "\\mathbb" not in text  # every formula typeset, no TeX source left
    page.locator("mjx-container").nth(5).scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "feedback-mathjax-offline.png"))
    assert page.evaluate(CLIPPED, LONG_LINE) == [{"cut": False, "beyond": False}]
    page.close()


@pytest.fixture(scope="module")
def formgrader(graded_course):  # noqa: F811
    """A Jupyter server with nbgrader's formgrader, run in the graded course on a localhost port."""
    port = free_port()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    server = subprocess.Popen([str(BIN / "jupyter"), "server", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                               f"--port={port}", "--ServerApp.token=", "--ServerApp.password="],
                              cwd=graded_course, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{url}/formgrader/api/submitted_notebooks/{ASSIGNMENT}/backprop",
                                            timeout=5) as reply:
                    yield url, {nb["student"]: nb["id"] for nb in json.load(reply)}
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("formgrader did not answer within 60 s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_formgrader_shows_full_diagnosis_lines(browser, formgrader):
    url, submissions = formgrader
    page = offline_page(browser, allowed_prefix=url)
    page.goto(f"{url}/formgrader/submissions/{submissions['dev']}/?index=0")
    line = page.locator(f"pre:has-text('{LONG_LINE}')").first
    line.wait_for(timeout=30000)
    line.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "formgrader-diagnosis-lines.png"))
    assert page.evaluate(CLIPPED, LONG_LINE) == [{"cut": False, "beyond": False}]
    assert "worst d_y[0, 0]: got" in line.inner_text() and "(rel. error 1)" in line.inner_text().replace("\n", " ")
    page.close()
