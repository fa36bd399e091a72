"""The feedback page nbgrader writes for a student renders its scores in a real browser (headless Chromium).

No network: the page is opened from a file:// URL and every host name resolves to nothing (MathJax comes from
the course's own copy, feedback/mathjax/: test_pages.py checks the formulas; the scores are plain HTML).
The screenshot is kept in test-artifacts/ for a human to look at.
"""
import html
import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import ASSIGNMENT, REPO
from graded_course import CORRECT, LATE_STUDENTS, MAX_SCORE, STUDENTS, UNTOUCHED, graded_course  # noqa: F401
from grading.reporting import grades as report
from grading.notebook_items import graded_items
from test_report import ITEM_MAX, png_size

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
TEST_IDS = [item.test_id for item in graded_items()]
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (make system-deps)")

# Appended to a copy of the page: reports what the browser laid out, as text a --dump-dom can show.
PROBE = r"""<script>
const text = e => e.innerText.replace(/\s+/g, " ").trim();  // what a reader sees, spaces collapsed
const shown = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
const probe = {
  header: text(document.querySelector(".panel-heading h4")),
  toc: [...document.querySelectorAll("#toc li")].map(text),
  penalty: [...document.querySelectorAll("#toc li.late-penalty")].map(text),
  comments: [...document.querySelectorAll(".nbgrader_cell .panel-footer")].map(text),
  cells: [...document.querySelectorAll(".nbgrader_cell > .panel-heading")]
    .filter(h => text(h.querySelector(".nbgrader-label")).startsWith("Grade cell"))
    .map(h => ({id: text(h.querySelector("code")), score: text(h.querySelector(".pull-right")),
                shown: shown(h.querySelector(".pull-right"))})),
};
const pre = document.createElement("pre");
pre.id = "render-probe";
pre.textContent = JSON.stringify(probe);
document.body.appendChild(pre);
</script>
</body>"""


def chromium(url, *args, profile):
    """Run headless Chromium on `url` with a fresh profile and no network; return its stdout."""
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND", *args, url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
    return proc.stdout


def feedback_page(course, student):
    return course / "feedback" / student / ASSIGNMENT / "backprop.html"


def rendered_scores(page, tmp_path):
    """What the browser shows of the page's scores: header, table of contents, grade-cell headings."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    probed = tmp_path / "probed.html"
    # The probe is a script and the page's Content-Security-Policy forbids scripts: this copy goes without it.
    unguarded = re.sub(r"<meta[^>]*Content-Security-Policy[^>]*>", "", page.read_text(), count=1)
    probed.write_text(unguarded.replace("</body>", PROBE, 1))
    dom = chromium(probed.as_uri(), "--virtual-time-budget=5000", "--dump-dom", profile=tmp_path / "profile")
    match = re.search(r'<pre id="render-probe">(.*?)</pre>', dom, re.S)
    assert match, "the page did not finish rendering (no probe output in the DOM)"
    return json.loads(html.unescape(match.group(1)))


def shown_as(points):
    """How nbgrader's feedback template writes a number: `{{ x | float | round(2) }}`."""
    return str(round(float(points), 2))


def test_untouched_submission_shows_zero_scores(graded_course, tmp_path):
    seen = rendered_scores(feedback_page(graded_course, UNTOUCHED), tmp_path)
    assert seen["header"] == f"backprop (Score: 0.0 / {shown_as(MAX_SCORE)})"
    # The table of contents lists each grade cell with its score; an answer left as handed out also gets
    # nbgrader's automatic "No response." comment, listed as "Comment" before its test cell.
    assert seen["toc"] == [line for m in ITEM_MAX.values()
                           for line in ["Comment", f"Test cell (Score: 0.0 / {shown_as(m)})"]]
    assert seen["comments"] == ["Comments: No response."] * len(ITEM_MAX)
    assert seen["cells"] == [{"id": test_id, "score": f"Score: 0.0 / {shown_as(m)} (Top)", "shown": True}
                             for test_id, m in zip(TEST_IDS, ITEM_MAX.values())]
    assert seen["penalty"] == []


def test_every_page_shows_the_scores_in_the_gradebook(graded_course, tmp_path):
    rows = {r.student: r for r in report.load_report(graded_course).rows}
    for student in STUDENTS:
        row, seen = rows[student], rendered_scores(feedback_page(graded_course, student), tmp_path / student)
        # the score after the late penalty
        assert seen["header"] == f"backprop (Score: {shown_as(row.score)} / {shown_as(MAX_SCORE)})", student
        assert [line for line in seen["toc"] if line.startswith("Test cell")] == [
            f"Test cell (Score: {shown_as(row.items[i])} / {shown_as(m)})" for i, m in ITEM_MAX.items()]
        assert [c["score"] for c in seen["cells"]] == [
            f"Score: {shown_as(row.items[i])} / {shown_as(m)} (Top)" for i, m in ITEM_MAX.items()]
        assert all(c["shown"] for c in seen["cells"])
        late = [f"Late submission penalty (Score: -{shown_as(row.penalty)})"] if student in LATE_STUDENTS else []
        assert seen["penalty"] == late, student


@pytest.mark.parametrize("student", [CORRECT, *LATE_STUDENTS])  # a late page shows the penalty
def test_screenshot_of_feedback_page(graded_course, tmp_path, student):
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"feedback_{student}.png"
    shot.unlink(missing_ok=True)
    chromium(feedback_page(graded_course, student).as_uri(), "--hide-scrollbars", "--window-size=1280,2000",
             f"--screenshot={shot}", profile=tmp_path / "profile")
    assert png_size(shot) == (1280, 2000)

    import matplotlib.image
    pixels = matplotlib.image.imread(shot)[..., :3]
    ink = (pixels < 0.9).any(axis=-1).mean()  # share of pixels that are not (near) white
    colours = len({tuple(p) for p in (pixels[::8, ::8] * 255).astype(int).reshape(-1, 3)})
    assert 0.02 < ink < 0.9 and colours > 20, f"blank or flat screenshot: ink {ink:.3f}, {colours} colours"
