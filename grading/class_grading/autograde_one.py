"""One submission through nbgrader's full Autograde on a worker: the unit of work of class grading.

A task carries everything it grades with: the course files of `course_payload` (config, trusted modules, source/
and release/ of the assignment, so the sandbox gets exactly the support files that sequential grading gives it,
and as gradebook.db a SQLite snapshot of the assignment's structure, gradebook_rows.py), sent once per worker;
and, per task, one submission with the student's gradebook rows. It runs the course's whole autograde pipeline
(sanitizing, execution, SaveAutoGrades, late penalties, ...) in a private scratch course against that snapshot
and returns a `Graded`: the autograded files and the student's gradebook values as plain data, which the
coordinator records (recording.py). It imports nothing from the temporary course it builds: the `grading`
package comes from a stable place on the worker (ship_package.py), imported here up front.
"""
import os
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple, Optional

from nbgrader.api import Gradebook

from grading.class_grading.gradebook_rows import add_rows, recorded_values, structure_snapshot
from grading.class_grading.problems import one_line, reason_from_nbgrader_result
from grading.course_config import nbgrader_api
from grading.plugins.intake import SubmissionIntake
from grading.trusted.seed_salt import SeedSalt

STARTED_TOPIC = "grading-task-started"  # Dask event a task logs when it starts: {"key": ..., "worker": ...}
GRADEBOOK = "gradebook.db"               # the snapshot's name in the scratch course


class Graded(NamedTuple):
    """What a task sends back. `files`: {path below autograded/<student>/<assignment>/: (mode, bytes)}, None when
    nbgrader's Autograde did not run to its end (nothing of it is recorded then);
    `values`: gradebook_rows.recorded_values of the scratch gradebook (None: nbgrader recorded no submission)."""
    student: str
    files: dict
    values: Optional[dict]
    problem: Optional[str]
    seconds: float


def regular_files(base, with_mode=False):
    """{relative path: bytes, or (mode, bytes) with_mode} of the regular files below `base`; symlinks and special
    files are not followed."""
    files = {}
    for folder, dirs, names in os.walk(base):  # os.walk does not descend into symlinked directories
        for name in names:
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                data = path.read_bytes()
                files[str(path.relative_to(base))] = (stat.S_IMODE(mode), data) if with_mode else data
        dirs[:] = [d for d in dirs if d != "__pycache__"]
    return files


def course_payload(course, assignment):
    """The course files a worker needs to grade like this course does, as {relative path: bytes}: with the seed
    secret (created here if the course has none yet), so workers draw the hidden inputs sequential grading does,
    and the structure snapshot of the course gradebook (wherever db_url points) as gradebook.db."""
    course = Path(course)
    api = nbgrader_api(course)
    cd = api.coursedir
    files = {rel: (course / rel).read_bytes() for rel in ["nbgrader_config.py", "nn.py"]}
    with tempfile.TemporaryDirectory(prefix="snapshot-") as tmp:
        structure_snapshot(cd.db_url, assignment, Path(tmp) / GRADEBOOK)
        files[GRADEBOOK] = (Path(tmp) / GRADEBOOK).read_bytes()
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
    if "distributed" not in sys.modules:  # not on a Dask worker (a local pool's worker never imports Dask)
        return
    from distributed import get_worker
    try:
        worker = get_worker()
    except ValueError:  # not running as a Dask task
        return
    worker.log_event(STARTED_TOPIC, {"key": worker.get_current_task(), "worker": worker.address})


def autograde_remotely(course_files, assignment, student, submission_files, gradebook_rows):
    """Autograde one submission with the course's full pipeline in a private scratch course whose gradebook is
    the snapshot plus `gradebook_rows` (the student's). Returns a Graded; whatever goes wrong becomes its problem,
    never an exception."""
    announce_start()
    start, files, values, saved_path = time.monotonic(), None, None, list(sys.path)
    try:
        with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
            root = Path(tmp)
            write_files(root, course_files)
            write_files(root / "submitted" / student / assignment, submission_files)
            db_url = f"sqlite:///{root / GRADEBOOK}"
            add_rows(db_url, gradebook_rows)
            api = nbgrader_api(root, CourseDirectory={"db_url": db_url})
            problem = reason_from_nbgrader_result(api.autograde(assignment, student))
            files = regular_files(Path(api.coursedir.format_path(api.coursedir.autograded_directory, student,
                                                                 assignment)), with_mode=True)
            with Gradebook(db_url, api.coursedir.course_id) as gb:
                values = recorded_values(gb, assignment, student)
    except Exception as error:
        problem = one_line(error)
    finally:
        sys.path[:] = saved_path  # loading a course may put its (now deleted) directory on sys.path
    return Graded(student, files, values, problem, time.monotonic() - start)
