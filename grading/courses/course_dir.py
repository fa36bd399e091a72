"""A fresh course directory made from this repository, and nbgrader's CLI run in one: what the benchmarks and
the tests build their temporary courses with.

A course directory holds what `nbgrader` needs to generate, autograde and give feedback: nbgrader_config.py,
the grading package it names, the reference layers nn.py, and source/<ASSIGNMENT>/ with the build copy of
nn.py that `make release` puts there.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from grading.course import ASSIGNMENT

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SKIPPED = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")


def make_course(root, repo=REPO):
    """A course directory at `root` (created if needed) with the course files copied from `repo`; returns its
    Path. Copies already there are replaced; everything else in it (gradebook, submissions, ...) stays."""
    root, repo = Path(root), Path(repo)
    if root.resolve() == repo.resolve():
        raise ValueError(f"a course directory made from {repo} cannot be {repo} itself")
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(repo / "nbgrader_config.py", root)
    shutil.copy(repo / "nn.py", root)
    for folder in ("grading", "source"):
        shutil.rmtree(root / folder, ignore_errors=True)
        shutil.copytree(repo / folder, root / folder, ignore=SKIPPED)
    shutil.copy(repo / "nn.py", root / "source" / ASSIGNMENT / "nn.py")  # as `make release` does
    return root


def run_nbgrader(course, *args, timeout=900):
    """`nbgrader ARGS` run in `course` (its nbgrader_config.py applies); the CompletedProcess, text output.

    The venv's bin comes first on PATH because nbgrader shells out to alembic."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([str(BIN / "nbgrader"), *args], cwd=course, env=env, text=True, capture_output=True,
                          timeout=timeout)
