"""One submission through nbgrader's Autograde: the unit of work of grading.cli.grade_class, run in the
coordinator's process or as a Dask task on any worker.

A task carries everything it grades with: the course files of `course_payload` (config, gradebook, trusted
modules, source/ and release/ of the assignment, so the sandbox gets exactly the support files that
sequential grading gives it) and one submission. It imports nothing from the temporary course it builds:
the `grading` package comes from a stable place on the worker (grading/cli/ship_package.py), imported here
up front.
"""
import os
import stat
import sys
import tempfile
import time
from pathlib import Path

from distributed import get_worker
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config.loader import PyFileConfigLoader

from grading.cli.report import reason_from_nbgrader_result
from grading.plugins.intake import SubmissionIntake
from grading.trusted.seed_salt import SeedSalt

STARTED_TOPIC = "grading-task-started"  # Dask event a task logs when it starts: {"key": ..., "worker": ...}
TRUSTED_EXECUTE = "grading.plugins.trusted_execute.TrustedExecute"


def load_api(course, **overrides):
    """nbgrader's own API object for `course`, configured by its nbgrader_config.py (plus `overrides`)."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    config.CourseDirectory.root = str(course)
    for section, values in overrides.items():
        for key, value in values.items():
            setattr(config[section], key, value)
    return NbGraderAPI(CourseDirectory(config=config), config=config)


def one_line(error):
    """An exception as the one line a student's row shows: "Type: first line of the message"."""
    lines = str(error).strip().splitlines()
    return (f"{type(error).__name__}: {lines[0].strip()}" if lines else type(error).__name__)[:300]


def regular_files(base):
    """{relative path: bytes} of the regular files below `base`; symlinks and special files are not followed."""
    files = {}
    for folder, dirs, names in os.walk(base):  # os.walk does not descend into symlinked directories
        for name in names:
            path = Path(folder) / name
            if stat.S_ISREG(path.lstat().st_mode):
                files[str(path.relative_to(base))] = path.read_bytes()
        dirs[:] = [d for d in dirs if d != "__pycache__"]
    return files


def course_payload(course, assignment):
    """The course files a worker needs to grade like this course does, as {relative path: bytes}: with the seed
    secret (created here if the course has none yet), so workers draw the hidden inputs sequential grading does."""
    course = Path(course)
    api = load_api(course)
    cd = api.coursedir
    files = {rel: (course / rel).read_bytes() for rel in ["nbgrader_config.py", "gradebook.db", "nn.py"]}
    seeds = SeedSalt(config=api.config)
    files[seeds.secret_file] = seeds.secret(str(course))
    for folder in (cd.source_directory, cd.release_directory):
        base = Path(folder) / assignment
        files.update({str(base / rel): data for rel, data in regular_files(course / base).items()})
    return files


def submission_payload(course, assignment, student):
    """The submission's files, read through the intake: regular files only, never a link or device ({} for a
    refused submission, which the coordinator's own Autograde then refuses with its reason)."""
    return SubmissionIntake.for_course(course).read(Path(course) / "submitted", student, assignment)


def write_files(root, files):
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def announce_start():
    """Tell the coordinator (a Dask event) that this task now runs, so its time limit starts now."""
    try:
        worker = get_worker()
    except ValueError:  # not running as a Dask task
        return
    worker.log_event(STARTED_TOPIC, {"key": worker.get_current_task(), "worker": worker.address})


def execute_remotely(course_files, assignment, student, submission_files):
    """Autograde one submission in a private scratch course, executing only (the coordinator records the
    grades with grading/plugins/replay.py). Returns (student, {notebook: bytes}, problem or None, seconds);
    whatever goes wrong becomes the problem, never an exception."""
    announce_start()
    start, notebooks, saved_path = time.monotonic(), {}, list(sys.path)
    try:
        with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
            root = Path(tmp)
            write_files(root, course_files)
            write_files(root / "submitted" / student / assignment, submission_files)
            api = load_api(root, Autograde={"autograde_preprocessors": [TRUSTED_EXECUTE]})
            problem = reason_from_nbgrader_result(api.autograde(assignment, student))
            out = root / "autograded" / student / assignment
            notebooks = {p.name: p.read_bytes() for p in out.glob("*.ipynb")}
    except Exception as error:
        problem = one_line(error)
    finally:
        sys.path[:] = saved_path  # nbgrader_config.py puts the (now deleted) course on sys.path
    return student, notebooks, problem, time.monotonic() - start
