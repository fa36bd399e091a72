"""grading/plugins/intake.py on real file-system objects: every kind of entry nbgrader must never open is refused
with its one-line reason, nothing is followed or opened while deciding, acceptable submissions are read whole, and
the caps come from nbgrader_config.py. (Whole classes with these entries: tests/test_hostile_submissions.py.)"""
import os
import socket
import stat

import pytest
from traitlets.config import Config

from conftest import REPO
from grading.plugins.intake import SubmissionIntake
from hostile_course import PipeWatch

REFUSED = "submission refused, nothing in it was read: "


@pytest.fixture
def submitted(tmp_path):
    """submitted/ with one acceptable submission, s/a/: two files and a sub-folder."""
    folder = tmp_path / "submitted" / "s" / "a"
    (folder / "notes").mkdir(parents=True)
    (folder / "backprop.ipynb").write_text("{}")
    (folder / "notes" / "todo.txt").write_text("ask\n")
    return tmp_path / "submitted"


def refusal(submitted, **caps):
    return SubmissionIntake(**caps).refusal(submitted, "s", "a")


def test_an_ordinary_submission_is_accepted_and_read_whole(submitted):
    assert refusal(submitted) is None
    assert SubmissionIntake().read(submitted, "s", "a") == {"backprop.ipynb": b"{}", "notes/todo.txt": b"ask\n"}


def test_an_absent_submission_is_nothing_to_refuse(tmp_path, submitted):
    assert SubmissionIntake().refusal(submitted, "nobody", "a") is None
    assert SubmissionIntake().read(submitted, "nobody", "a") == {}
    assert SubmissionIntake().refusal(tmp_path / "no-such-folder", "s", "a") is None


@pytest.mark.parametrize("make, reason", [
    (lambda f: (f / "nn.py").symlink_to("/etc/passwd"), "nn.py is a symbolic link"),
    (lambda f: (f / "data").symlink_to("/dev/zero"), "data is a symbolic link"),
    (lambda f: (f / "notes" / "up").symlink_to("../..", target_is_directory=True),
     "notes/up is a symbolic link"),
    (lambda f: os.mkfifo(f / "pipe"), "pipe is a named pipe (FIFO)"),
    (lambda f: socket.socket(socket.AF_UNIX).bind(str(f / "sock")), "sock is a socket"),
    (lambda f: os.link(f / "notes" / "todo.txt", f.parents[2] / "elsewhere.txt"),
     "notes/todo.txt is a hard link (its file has 2 names)"),
])
def test_links_pipes_sockets_and_hard_links_are_refused(submitted, make, reason):
    make(submitted / "s" / "a")
    assert refusal(submitted) == REFUSED + reason
    assert SubmissionIntake().read(submitted, "s", "a") == {}


def test_a_device_is_refused(submitted):
    try:
        os.mknod(submitted / "s" / "a" / "zero", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD (a link to /dev/zero is tested above)")
    assert refusal(submitted) == REFUSED + "zero is a character device"


def test_the_student_and_assignment_folders_themselves_must_be_folders(submitted):
    (submitted / "t").symlink_to("s", target_is_directory=True)
    assert SubmissionIntake().refusal(submitted, "t", "a") == REFUSED + "the student folder is a symbolic link"
    (submitted / "u").mkdir()
    (submitted / "u" / "a").symlink_to("../s/a", target_is_directory=True)
    assert SubmissionIntake().refusal(submitted, "u", "a") == REFUSED + "the assignment folder is a symbolic link"
    (submitted / "v").write_text("")
    assert SubmissionIntake().refusal(submitted, "v", "a") == REFUSED + "the student folder is a file, not a folder"
    assert SubmissionIntake().refusal(submitted, "..", "a") == REFUSED + "the student folder .. is not a folder name"


def test_the_instructors_submitted_folder_may_itself_be_a_link(tmp_path, submitted):
    (tmp_path / "elsewhere").symlink_to(submitted, target_is_directory=True)
    assert SubmissionIntake().refusal(tmp_path / "elsewhere", "s", "a") is None
    (submitted / "s" / "a" / "x").symlink_to("y")
    assert SubmissionIntake().refusal(tmp_path / "elsewhere", "s", "a") == REFUSED + "x is a symbolic link"


def test_count_and_size_are_capped(submitted):
    assert refusal(submitted, max_files=3) is None  # backprop.ipynb, notes/, notes/todo.txt
    assert refusal(submitted, max_files=2) == REFUSED + "more than 2 files and folders"
    (submitted / "s" / "a" / "big.bin").write_bytes(b"\0" * (1 << 20))
    assert refusal(submitted, max_total_mb=1) == REFUSED + "its files add up to more than 1 MiB"
    assert refusal(submitted, max_total_mb=2) is None


def test_names_in_reasons_are_one_printable_line(submitted):
    (submitted / "s" / "a" / "evil\nname<b>").symlink_to("x")
    reason = refusal(submitted)
    assert "\n" not in reason and reason.isprintable() and "evil\\nname<b>" in reason


def test_nothing_behind_a_link_or_in_a_pipe_is_opened(tmp_path, submitted):
    """Pipes block whoever opens them: one inside the submission and one outside behind a link, watched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    os.mkfifo(outside / "secret")
    os.mkfifo(submitted / "s" / "a" / "pipe")
    (submitted / "s" / "a" / "secret").symlink_to(outside / "secret")
    (submitted / "t").symlink_to(outside, target_is_directory=True)
    with PipeWatch(submitted, outside) as watch:
        intake = SubmissionIntake()
        assert intake.refusal(submitted, "s", "a").startswith(REFUSED)
        assert intake.read(submitted, "s", "a") == {}
        assert intake.read(submitted, "t", "secret") == {}
    assert len(watch.pipes) == 2 and watch.opened == set()


def test_caps_come_from_the_course_config(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.SubmissionIntake.max_files = 7\n"
                                                 "c.SubmissionIntake.max_total_mb = 3\n")
    intake = SubmissionIntake.for_course(tmp_path)
    assert (intake.max_files, intake.max_total_mb) == (7, 3)
    repo = SubmissionIntake.for_course(REPO)
    assert (repo.max_files, repo.max_total_mb) == (200, 100)
    assert SubmissionIntake(config=Config({"SubmissionIntake": {"max_files": 1}})).max_files == 1


def test_the_course_config_puts_the_intake_in_front_of_nbgrader_autograde():
    """nbgrader's CLI (`nbgrader autograde`) and API (formgrader, grade_class) both use this class."""
    from nbgrader.apps import api, autogradeapp
    SubmissionIntake.for_course(REPO)  # loads nbgrader_config.py, as every nbgrader entry point does
    assert autogradeapp.Autograde is api.Autograde
    assert getattr(api.Autograde.init_destination, "intake", False)
