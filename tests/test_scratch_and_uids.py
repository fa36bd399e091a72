"""The sandbox's scratch builder (grading/sandbox/scratch.py) on real directories -- symlinks, devices, FIFOs,
hard links, instructor-only files, a missing release folder -- and the unique sandbox UIDs (grading/sandbox/uids.py)
of real kernel managers."""
import os
import stat
from pathlib import Path

import pytest

from grading.sandbox.kernel_manager import SandboxedKernelManager, SandboxError
from grading.sandbox.scratch import ScratchBuilder, ScratchError


def course(tmp_path, release=True):
    """source/ps1 with an instructor-only file, release/ps1 (unless not `release`), gradebook.db, and the
    autograded submission folder nbgrader would have filled: student files plus copies from source/."""
    root = tmp_path / "course"
    (root / "source" / "ps1").mkdir(parents=True)
    (root / "source" / "ps1" / "gradcheck.py").write_text("CHECKER = 1\n")
    (root / "source" / "ps1" / "solutions.py").write_text("ANSWER = 'instructor only'\n")
    if release:
        (root / "release" / "ps1").mkdir(parents=True)
        (root / "release" / "ps1" / "gradcheck.py").write_text("CHECKER = 1\n")
    (root / "gradebook.db").write_text("grades of every student\n")
    sub = root / "autograded" / "alice" / "ps1"
    (sub / "data").mkdir(parents=True)
    (sub / "nb.ipynb").write_text("{}")
    (sub / "helper.py").write_text("def help(): pass\n")
    (sub / "data" / "points.csv").write_text("1,2\n")
    for name in ("gradcheck.py", "solutions.py"):
        (sub / name).write_bytes((root / "source" / "ps1" / name).read_bytes())
    return root, sub


BUILT = []


@pytest.fixture(autouse=True)
def remove_scratch_dirs():
    """Each test's scratch directories are removed (and their quota mounts unmounted) after it."""
    yield
    while BUILT:
        BUILT.pop().remove()


def build(root, sub, **traits):
    paths = {"course_root": str(root), "source_directory": "source", "release_directory": "release",
             "assignment_id": "ps1"}
    scratch = ScratchBuilder(**traits).build(str(sub), paths)
    BUILT.append(scratch)
    return Path(scratch.base), Path(scratch.work)


def listing(scratch):
    return sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*"))


def test_copies_support_files_but_not_instructor_only_ones(tmp_path):
    root, sub = course(tmp_path)
    base, scratch = build(root, sub)
    assert listing(scratch) == ["data", "data/points.csv", "gradcheck.py", "helper.py"]
    assert stat.S_IMODE(scratch.stat().st_mode) == 0o700 and scratch.parent == base
    assert (scratch / "helper.py").read_text() == "def help(): pass\n"


def test_links_devices_and_fifos_are_never_followed(tmp_path):
    root, sub = course(tmp_path)
    os.symlink(root / "source" / "ps1" / "solutions.py", sub / "answers.py")       # absolute
    os.symlink("../../../gradebook.db", sub / "grades.txt")                         # relative
    os.symlink("/proc/self/cwd/gradebook.db", sub / "cwd.txt")
    os.symlink(root / "source", sub / "src")                                        # a directory
    os.symlink("/dev/zero", sub / "zeros.bin")
    os.mkfifo(sub / "pipe")
    os.link(root / "gradebook.db", sub / "hardlinked.db")
    if os.geteuid() == 0:
        os.mknod(sub / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    _, scratch = build(root, sub)
    assert listing(scratch) == ["data", "data/points.csv", "gradcheck.py", "helper.py"]


def test_refuses_when_it_cannot_tell_instructor_files(tmp_path):
    root, sub = course(tmp_path, release=False)
    before = set(os.listdir(tmp_path))
    with pytest.raises(ScratchError) as info:
        build(root, sub, scratch_root=str(tmp_path))
    assert "\n" not in str(info.value) and "release" in str(info.value)
    assert set(os.listdir(tmp_path)) == before            # nothing was created, nothing copied
    os.symlink(root / "source" / "ps1", root / "release")  # a link where the release folder should be
    with pytest.raises(ScratchError):
        build(root, sub)
    with pytest.raises(ScratchError, match="no assignment id"):
        ScratchBuilder().build(str(sub), {"course_root": str(root), "source_directory": "source",
                                          "release_directory": "release", "assignment_id": ""})
    _, scratch = build(root, sub, exclude_instructor_files=False)      # the instructor's explicit choice
    assert "solutions.py" in listing(scratch)


def test_support_file_budget(tmp_path):
    root, sub = course(tmp_path)
    (sub / "big.bin").write_bytes(b"x" * (2 << 20))
    _, scratch = build(root, sub, support_files_max_mb=1)
    assert "big.bin" not in listing(scratch) and "helper.py" in listing(scratch)


@pytest.mark.skipif(os.geteuid() != 0, reason="sandbox UIDs are only used when grading as root")
def test_sandbox_uids_are_unique_among_live_kernels(tmp_path):
    def manager():
        return SandboxedKernelManager(kernel_name="python3", scratch_dir=str(tmp_path), sandbox_uid_base=1_700_000_000,
                                      sandbox_uid_count=2)

    first, second, third = manager(), manager(), manager()
    uids = {first.kernel_uid, second.kernel_uid}
    assert uids == {1_700_000_000, 1_700_000_001}      # two live kernels never share a UID (nor RLIMIT_NPROC)
    with pytest.raises(SandboxError, match="no free sandbox UID"):
        _ = third.kernel_uid
    from jupyter_core.utils import run_sync
    run_sync(first.cleanup_resources)()                 # the kernel is gone: its UID may serve another one
    assert third.kernel_uid in uids and third.kernel_uid != second.kernel_uid
    fixed = SandboxedKernelManager(kernel_name="python3", scratch_dir=str(tmp_path), sandbox_uid=second.kernel_uid)
    with pytest.raises(SandboxError, match="already used"):
        _ = fixed.kernel_uid
