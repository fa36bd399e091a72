"""JupyterLab as a student sees it: a copy of the release, with nbgrader's student side only.

    python -m grading.student_lab [--work DIR] [--port N] [--token T] [-- more jupyter lab options]

(`make student`). Copies release/<assignment>/ into DIR (default student-work/, git-ignored) unless DIR already
has it -- the copy is the student's work and is never overwritten -- and starts `jupyter lab` there.

The Lab gets its own Jupyter config directory, DIR/.jupyter, copied from grading/student_lab/jupyter/:
  - jupyter_server_config.json turns off nbgrader's formgrader, course-list and assignment-list server
    extensions and keeps validate_assignment (the Validate button);
  - labconfig/page_config.json disables and locks the matching lab plugins and the Nbgrader menu (whose only
    entries are instructor tools and the course and assignment lists), so the plugin manager cannot bring them back.
Only this Lab reads DIR/.jupyter (JUPYTER_CONFIG_DIR); the instructor's `jupyter lab` keeps every extension.
The server runs in DIR, so Validate uses nbgrader's defaults, not the course's nbgrader_config.py.
"""
import argparse
import os
import shutil
import sys
from pathlib import Path

from grading.course import ASSIGNMENT, NOTEBOOK

CONFIG = Path(__file__).resolve().parent / "jupyter"


def prepare(work, release):
    """Copy the release into work/ unless it is there, and (re)write the Lab's config dir; return both paths."""
    work = Path(work).resolve()
    assignment = work / release.name
    if assignment.exists():
        print(f"kept {assignment} (your work; delete it for a fresh copy of the release)")
    else:
        shutil.copytree(release, assignment, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        print(f"copied {release} to {assignment}")
    config = work / ".jupyter"
    shutil.copytree(CONFIG, config, dirs_exist_ok=True)  # keeps the Lab's own settings and workspaces
    return assignment, config


def lab_command(work, port=None, token=None, extra=()):
    """The `jupyter lab` command line for the student Lab rooted at `work`."""
    cmd = [str(Path(sys.executable).parent / "jupyter"), "lab", f"--ServerApp.root_dir={work}"]
    cmd += [f"--port={port}", "--ServerApp.port_retries=0"] if port else []
    cmd += [f"--IdentityProvider.token={token}"] if token is not None else []
    cmd += ["--allow-root"] if os.geteuid() == 0 else []
    return cmd + list(extra)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("student-work"), help="where the copy goes")
    parser.add_argument("--release", type=Path, default=Path("release") / ASSIGNMENT, help="what is copied")
    parser.add_argument("--port", type=int, help="default: jupyter's (8888, or the next free one)")
    parser.add_argument("--token", help="default: a random one, printed in the URL")
    parser.add_argument("extra", nargs="*", help="passed to jupyter lab (after --)")
    args = parser.parse_args(argv)
    if not (args.release / NOTEBOOK).is_file():
        parser.exit(1, f"grading.student_lab: no release at {args.release}: run `make release` first\n")
    assignment, config = prepare(args.work, args.release)
    work = assignment.parent
    os.chdir(work)
    os.environ["JUPYTER_CONFIG_DIR"] = str(config)
    cmd = lab_command(work, args.port, args.token, args.extra)
    sys.stdout.flush()
    os.execv(cmd[0], cmd)  # the Lab replaces this process: Ctrl-C and signals reach it directly
