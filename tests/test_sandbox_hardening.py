"""Sandbox hardening, tried from real student cells: the seccomp filter (no new namespaces -- as root too --, no
mounts, ptrace, bpf, keyctl, perf_event_open, userfaultfd, io_uring) and an /etc with only the files Python needs
(grading/in_sandbox/seccomp.py, grading/sandbox/command.py, grading/sandbox/kernel_manager.py).

The fast tests run attack cells in one sandboxed kernel. The slow test grades a class with the real pipeline
(`python -m grading.cli.grade_class`): the catalog below, an honest student who must still get 10/10, and the
budget entries (many sleeping cells, two hanging items, a disk filler) whose exact points and notes show that one
runaway submission costs only itself and the class run goes on.
"""
import os
import platform
import shutil
import subprocess
import sys

import nbformat
import pytest
from test_sandbox import sandbox  # noqa: F401 -- the shared sandboxed kernel (a module fixture)

from conftest import ASSIGNMENT, NOTEBOOK
from grading.reporting import grades as report
from hostile_catalog import ALL, POINTS, Entry, insert_code, with_cell, write
from hostile_course import HONEST, build_class, grades_in_db, leaked_lines

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

# Every way to a new namespace, a mount or the kernel's attack surface, each printed as "<what> <errno name>".
# Raw syscall numbers are x86_64's.
ESCAPES = r'''
import ctypes, errno, os, subprocess, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def outcome(result):
    return "ok" if result >= 0 else errno.errorcode[ctypes.get_errno()]
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, SIGCHLD = 0x20000, 0x10000000, 0x20000000, 0x40000000, 17
tries = {
    "unshare(user)": lambda: libc.unshare(CLONE_NEWUSER),
    "unshare(mount)": lambda: libc.unshare(CLONE_NEWNS),
    "unshare(net)": lambda: libc.unshare(CLONE_NEWNET),
    "setns": lambda: libc.setns(os.open("/proc/self/ns/user", os.O_RDONLY), 0),
    "mount": lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None),
    "umount": lambda: libc.umount2(b"/tmp", 2),
    "chroot": lambda: libc.chroot(b"/tmp"),
    "keyctl": lambda: libc.syscall(250, 0, 0, 0, 0, 0),
    "bpf": lambda: libc.syscall(321, 0, 0, 0),
    "perf_event_open": lambda: libc.syscall(298, 0, 0, -1, -1, 0),
    "userfaultfd": lambda: libc.syscall(323, 0),
    "io_uring_setup": lambda: libc.syscall(425, 8, 0),
    "ptrace(traceme)": lambda: libc.ptrace(0, 0, 0, 0),
    "clone3": lambda: libc.syscall(435, 0, 0),
}
child = subprocess.Popen(["sleep", "30"])
tries["ptrace(attach)"] = lambda: libc.ptrace(16, child.pid, 0, 0)
for flag, name in ((CLONE_NEWUSER, "user"), (CLONE_NEWPID, "pid")):
    def fork_into(flag=flag):
        pid = libc.syscall(56, flag | SIGCHLD, 0, 0, 0, 0)
        if pid == 0:
            os._exit(0)          # a child in a new namespace: it must never exist
        return pid
    tries[f"clone({name})"] = fork_into
for what, attempt in tries.items():
    print(what, outcome(attempt()))
child.kill()
cli = subprocess.run(["unshare", "-Urmn", "id"], capture_output=True, text=True)
print("unshare-cli", cli.returncode, cli.stderr.strip())
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("seccomp", status["Seccomp"].strip(), "uid", os.getuid())
import threading
done = []
thread = threading.Thread(target=done.append, args=[1])
thread.start()
thread.join()
print("threads", done, "subprocess", subprocess.run(["echo", "fine"], capture_output=True, text=True).stdout.strip())
'''

DENIED = {"unshare(user)", "unshare(mount)", "unshare(net)", "setns", "mount", "umount", "chroot", "keyctl", "bpf",
          "perf_event_open", "userfaultfd", "io_uring_setup", "ptrace(traceme)", "ptrace(attach)", "clone(user)",
          "clone(pid)"}

READ_ETC = r'''
import os
print("etc", sorted(os.listdir("/etc")))
for path in ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf",
             "/etc/machine-id", "/etc/ssh/ssh_host_ed25519_key", "/etc/os-release", "/etc/environment"):
    try:
        print(path, "READ", open(path, errors="replace").read()[:40])
    except OSError as e:
        print(path, type(e).__name__)
'''

ETC_FILES = ["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf",
             "/etc/machine-id", "/etc/ssh/ssh_host_ed25519_key", "/etc/os-release", "/etc/environment"]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the attack cell uses x86_64 syscall numbers")
def test_no_namespaces_mounts_or_kernel_attack_surface(sandbox):  # noqa: F811
    out, err = sandbox.run(ESCAPES, timeout=60)
    assert err is None, out
    results = dict(line.split(" ", 1) for line in out.splitlines())
    assert {what: results[what] for what in DENIED} == {what: "EPERM" for what in DENIED}
    assert results["clone3"] == "ENOSYS"          # glibc falls back to clone, whose flags the filter reads
    assert results["unshare-cli"] == "1 unshare: unshare failed: Operation not permitted"
    assert results["seccomp"].startswith("2 uid ")                # filter mode
    if os.geteuid() == 0:
        assert results["seccomp"] != "2 uid 0"                    # run as root, the kernel still is not
    assert results["threads"] == "[1] subprocess fine"            # what notebooks need still works


def test_etc_holds_only_what_python_needs(sandbox):  # noqa: F811
    out, err = sandbox.run(READ_ETC)
    assert err is None, out
    lines = out.splitlines()
    listed = eval(lines[0].split(" ", 1)[1])       # noqa: S307 -- our own cell's printed list
    assert set(listed) <= {"ld.so.cache", "ld.so.preload", "localtime"} and "ld.so.cache" in listed
    assert lines[1:] == [f"{path} FileNotFoundError" for path in ETC_FILES]


# ------------------------------------------------------------------------------------------------ catalog ----

SLEEPER = "import time\ntime.sleep(13)    # just under the catalog's 15 s cell timeout"

HANG = """
    def backward(self, d_out):
        while True:          # ignores the grader's interrupt: only killing the kernel stops it
            try:
                while True:
                    pass
            except BaseException:
                pass
"""

DISK_FILLER = """
import os
os.makedirs("logs", exist_ok=True)
written = 0
try:
    while written < 4 << 30:      # a safety stop at 4 GiB, should the quota not hold
        with open(f"logs/{written >> 20}.log", "wb") as f:
            f.write(b"epoch loss accuracy\\n" * 52429)
        written += 1 << 20
except OSError as e:
    print("stopped after", written >> 20, "MiB:", e.strerror)
"""


def many_sleeping_cells(ctx, folder):
    nb = ctx.notebook(ALL)
    for i in range(12):
        insert_code(nb, "test_sum_backward", SLEEPER, f"sleep-{i}")
    write(folder, nb, ctx=ctx)


def two_hanging_items(ctx, folder):
    """The instructor's Multiply and Sum, whose backward hangs (the honest one is renamed)."""
    nb = ctx.notebook(ALL)
    for answer in ("multiply_backward", "sum_backward"):
        cell = next(c for c in nb.cells if c.id == answer)
        assert "    def backward(self, d_out):" in cell.source
        cell.source = cell.source.replace("    def backward(self, d_out):", "    def honest(self, d_out):") + HANG
    write(folder, nb, ctx=ctx)


# Each entry must earn exactly its honest base (solved items) and leave the given note in the report.
BUDGET_TIME = 120
CATALOG = [
    Entry("nested-namespaces", "tries unshare -Urmn, unshare/clone/setns, mount, bpf, ptrace... (all solved)",
          with_cell("multiply_backward", ESCAPES, ALL), earns=ALL),
    Entry("read-etc", "prints /etc/passwd, shadow, hostname, SSH host keys (all solved)",
          with_cell("code-02", READ_ETC, ALL), earns=ALL),
    Entry("many-sleeping-cells", "12 cells, each sleeping just under the cell timeout, after sum's test",
          many_sleeping_cells, earns=("test_multiply_backward", "test_sum_backward"),
          problem=f"the notebook's time budget of {BUDGET_TIME} s ran out"),
    Entry("two-hanging-items", "Multiply's and Sum's backward loop forever, ignoring interrupts (all else solved)",
          two_hanging_items, earns=("test_dot_product_backward", "test_nll_grad", "test_logreg_step"),
          problem="kernel died (killed after a call did not finish"),
]
if os.geteuid() == 0:       # the quota needs root; without it the filler would write its safety stop's 4 GiB
    CATALOG.append(Entry("disk-filler", "writes log files until the disk is full, after multiply's test (all "
                         "solved)", with_cell("test_multiply_backward", DISK_FILLER, ALL), earns=ALL,
                         problem="the scratch directory's disk quota (256 MiB) is full"))

CLASS_CONFIG = f"""
# --- budget and hardening catalog (tests/test_sandbox_hardening.py) ---
c.TrustedExecute.notebook_timeout = {BUDGET_TIME}
c.TrustedExecute.rpc_timeout = 5
"""


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    course = build_class(tmp_path_factory.mktemp("hardening") / "course", CATALOG)
    config = course / "nbgrader_config.py"
    config.write_text(config.read_text() + CLASS_CONFIG)
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([sys.executable, "-m", "grading.cli.grade_class", "--workers", "1"], cwd=course, env=env,
                          text=True, capture_output=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return course


def _cell_text(course, student, cell_id):
    nb = nbformat.read(course / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.id == cell_id for o in c.outputs)


@pytest.mark.slow
def test_catalog_class_each_entry_costs_only_itself(graded_class):
    rows = {r.student: r for r in report.load_report(graded_class).rows}
    grades = grades_in_db(graded_class)
    assert sorted(rows) == sorted([HONEST, *(e.name for e in CATALOG)])       # the class run went on
    assert grades[HONEST] == {gid: float(p) for gid, p in POINTS.items()}
    assert rows[HONEST].problem is None and rows[HONEST].total == 10
    for entry in CATALOG:
        assert grades[entry.name] == entry.expected, entry.name
        if entry.problem:
            assert entry.problem in (rows[entry.name].problem or ""), (entry.name, rows[entry.name].problem)
        else:
            assert rows[entry.name].problem is None, (entry.name, rows[entry.name].problem)
        assert leaked_lines(graded_class, entry.name) == []
    escapes = dict(line.split(" ", 1) for line in _cell_text(graded_class, "nested-namespaces",
                                                               "extra-cell").splitlines() if " " in line)
    assert {what: escapes[what] for what in DENIED} == {what: "EPERM" for what in DENIED}
    etc = _cell_text(graded_class, "read-etc", "extra-cell").splitlines()
    assert etc[1:] == [f"{path} FileNotFoundError" for path in ETC_FILES]
    if os.geteuid() == 0:
        filler = _cell_text(graded_class, "disk-filler", "extra-cell")
        assert filler.startswith("stopped after ") and filler.endswith(" MiB: No space left on device\n")
        assert int(filler.split()[2]) <= 256
