"""Shared fixtures: temporary course directories built from this repository, and nbgrader run for real."""
import socket
from pathlib import Path

import nbformat
import pytest

from grading.courses.course_dir import BIN, REPO, make_course, run_nbgrader  # noqa: F401 -- re-exported to the tests
from grading.course import ASSIGNMENT, NOTEBOOK  # noqa: F401 -- re-exported to the tests

SOURCE_NB = REPO / "source" / ASSIGNMENT / NOTEBOOK
CHROMIUM = Path("/usr/bin/chromium")  # Debian's, driven by Playwright (no browser download)
RELEASE_DIR = REPO / "release" / ASSIGNMENT


def nbgrader(course, *args, check=True, timeout=900):
    """Run the nbgrader CLI in `course` (its nbgrader_config.py applies) and return the CompletedProcess."""
    proc = run_nbgrader(course, *args, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def course(tmp_path):
    """A temporary course directory with the assignment generated into release/."""
    root = make_course(tmp_path / "course")
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    return root


# One course secret for the test courses whose grading is compared across courses: the same submission then draws
# the same hidden inputs in each (grading/trusted/seed_salt.py).
TEST_SECRET = "0f" * 32 + "\n"


def write_test_secret(course):
    """The shared test secret, owner-only like the one the grader creates."""
    path = Path(course) / "seed_secret"
    path.write_text(TEST_SECRET)
    path.chmod(0o600)


def solution_and_hidden_lines(nb_path=SOURCE_NB):
    """Instructor-only lines of the source notebook: inside solution or hidden-test regions and nowhere else."""
    nb = nbformat.read(nb_path, as_version=4)
    secret, public = set(), set()
    for cell in nb.cells:
        inside = None
        for line in cell.source.splitlines():
            text = line.strip()
            if text in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"):
                inside = text
                continue
            if text in ("### END SOLUTION", "### END HIDDEN TESTS"):
                inside = None
                continue
            if text:
                (secret if inside else public).add(text)
    return secret - public


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Playwright, one per test module."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def free_port():
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
