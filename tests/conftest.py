"""Shared fixtures: temporary course directories built from this repository, and nbgrader run for real."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grading.course import ASSIGNMENT, NOTEBOOK  # noqa: F401 -- re-exported to the tests

REPO = Path(__file__).resolve().parent.parent
SOURCE_NB = REPO / "source" / ASSIGNMENT / NOTEBOOK
RELEASE_DIR = REPO / "release" / ASSIGNMENT
BIN = Path(sys.executable).parent


def nbgrader(course, *args, check=True, timeout=900):
    """Run the nbgrader CLI in `course` (its nbgrader_config.py applies) and return the CompletedProcess."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=env, text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_course(root):
    """A fresh course directory at `root`: config, source (with the build copy of nn.py), grading package."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "nbgrader_config.py", root)
    shutil.copy(REPO / "nn.py", root)
    shutil.copytree(REPO / "grading", root / "grading", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "source", root / "source",
                    ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    shutil.copy(REPO / "nn.py", root / "source" / ASSIGNMENT / "nn.py")
    return root


@pytest.fixture
def course(tmp_path):
    """A temporary course directory with the assignment generated into release/."""
    root = make_course(tmp_path / "course")
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    return root


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
