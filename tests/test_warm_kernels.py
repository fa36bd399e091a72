"""Warm sandboxed kernels (grading/sandbox/warm_kernels.py): one `nbgrader autograde` run forks every kernel from
the same template, and nothing a hostile student leaves behind reaches the next student; without a template,
grading falls back to cold sandboxed kernels with one log line (slow: real nbgrader, real bwrap)."""
import json
import os
import signal

import nbformat
import pytest

from grading.sandbox import warm_template
from grading.sandbox.processes import descendants
from grading.sandbox.warm_template import nspid

from grading.sandbox.warm_kernels import WarmKernelManager
from test_sandbox import Sandbox, warm_config
from conftest import ASSIGNMENT, SOURCE_NB, make_course, nbgrader, write_test_secret
from grading.courses.sample_class import solution_sources
from grading.course import NOTEBOOK
from hostile_catalog import ALL, POINTS, Context, insert_code, write
from hostile_course import CATALOG_CONFIG, grades_in_db

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="warm kernels need root")

HOSTILE, HONEST = "aa-hostile", "zz-honest"    # graded in this order by one autograde run
PROBE_ID = "warm-probe"

# Everything a student could leave behind for the next one in a shared interpreter or sandbox.
HOSTILE_CELL = r'''
import builtins, os, subprocess, sys, threading, time, types
import numpy as np
np.dot = lambda *a, **k: 0.0
np.sum = lambda *a, **k: 0.0
builtins.CHEAT_BUILTIN = True
CHEAT_GLOBAL = True
for name in ("nn", "gradcheck", "planted_by_cheat"):
    fake = types.ModuleType(name)
    fake.PLANTED = True
    sys.modules[name] = fake
threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
subprocess.Popen(["sleep", "3600"], start_new_session=True)
if os.fork() == 0:                      # a daemonised grandchild
    os.setsid()
    if os.fork() == 0:
        time.sleep(3600)
    os._exit(0)
for path in ("cheat_cwd.txt", "/tmp/cheat_tmp.txt", "/dev/shm/cheat_shm.txt"):
    with open(path, "w") as f:
        f.write("left behind")
PTY = os.openpty()                      # held while this kernel lives
os.chdir("/tmp")
print("UID", os.getuid())
'''

PROBE_CELL = r'''
import builtins, ctypes, json, multiprocessing, os, random, sys
import numpy as np
import nn
libc = ctypes.CDLL(None, use_errno=True)
def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""
print(json.dumps({
    "uid": os.getuid(), "cwd": os.getcwd(), "cwd_files": sorted(os.listdir(".")),
    "tmp": sorted(os.listdir("/tmp")), "shm": sorted(os.listdir("/dev/shm")),
    "processes": {p: cmdline(p) for p in os.listdir("/proc") if p.isdigit()},
    "init": open("/proc/1/comm").read().strip(),
    "planted": sorted(n for n in ("nn", "gradcheck", "planted_by_cheat")
                      if getattr(sys.modules.get(n), "PLANTED", False)),
    "nn_file": getattr(nn, "__file__", None),
    "builtin": hasattr(builtins, "CHEAT_BUILTIN"), "global": "CHEAT_GLOBAL" in globals(),
    "dot": float(np.dot(np.ones(3), np.ones(3))), "sum": float(np.sum(np.ones(4))),
    "unshare": [libc.unshare(0x00020000), ctypes.get_errno()],
    "pts": sorted(os.listdir("/dev/pts")), "authkey": bytes(multiprocessing.current_process().authkey).hex(),
    "random": random.getrandbits(64),
}))
'''


def submission(ctx, folder, extra_source, cell_id):
    nb = ctx.notebook(ALL)
    insert_code(nb, nb.cells[-1].id, extra_source, cell_id)
    write(folder, nb, ctx=ctx)


def graded_class(root, extra_config=""):
    """A course with a hostile and an honest student (both fully correct answers), graded by one autograde run;
    (course, autograde's output)."""
    course = make_course(root)
    config = course / "nbgrader_config.py"
    config.write_text(config.read_text() + CATALOG_CONFIG + extra_config)
    write_test_secret(course)
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    ctx = Context(course / "release" / ASSIGNMENT, solution_sources(SOURCE_NB))
    submission(ctx, course / "submitted" / HOSTILE / ASSIGNMENT, HOSTILE_CELL + PROBE_CELL, PROBE_ID)
    submission(ctx, course / "submitted" / HONEST / ASSIGNMENT, PROBE_CELL, PROBE_ID)
    (course / "students.csv").write_text(f"id\n{HOSTILE}\n{HONEST}\n")
    nbgrader(course, "db", "student", "import", "students.csv")
    proc = nbgrader(course, "autograde", ASSIGNMENT, "--force")
    return course, proc.stdout + proc.stderr


def probe(course, student):
    nb = nbformat.read(course / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if c.get("id") == PROBE_ID)
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    lines = text.splitlines()
    return int(lines[0].split()[1]) if lines[0].startswith("UID") else None, json.loads(lines[-1])


@pytest.mark.slow
def test_a_hostile_student_leaves_nothing_for_the_next_one(tmp_path):
    course, log = graded_class(tmp_path / "course")
    assert "no warm kernel" not in log
    full = {gid: float(points) for gid, points in POINTS.items()}
    grades = grades_in_db(course)
    assert grades[HONEST] == full and grades[HOSTILE] == full      # the hostile cell comes after every answer
    hostile_uid, hostile = probe(course, HOSTILE)
    _, honest = probe(course, HONEST)
    # The hostile student's probe sees its own mess: the probe works.
    assert hostile["builtin"] and hostile["global"] and hostile["dot"] == 0.0 and hostile["cwd"] == "/tmp"
    assert hostile["planted"] == ["gradcheck", "nn", "planted_by_cheat"] and "cheat_tmp.txt" in hostile["tmp"]
    # Both kernels were forked from the template, each with its own UID, PID namespace and seccomp filter.
    assert hostile["init"] == honest["init"] == "warm-init"
    assert hostile_uid == hostile["uid"] != honest["uid"] and honest["uid"] > 0
    # The honest student sees none of it.
    assert honest["cwd"] == os.path.dirname(honest["nn_file"]) and honest["nn_file"].endswith("/scratch/nn.py")
    assert "cheat_cwd.txt" not in honest["cwd_files"] and "cheat_tmp.txt" not in honest["tmp"]
    assert honest["shm"] == []
    assert not honest["builtin"] and not honest["global"] and honest["planted"] == []
    assert honest["dot"] == 3.0 and honest["sum"] == 4.0
    # Its own init and kernel, nothing else: no leftover process, no template (its forks keep its command line).
    assert sorted(int(p) for p in honest["processes"]) == [1, 2]
    assert not any("sleep" in cmd for cmd in honest["processes"].values())
    assert honest["unshare"] == [-1, 1]      # EPERM: the seccomp filter
    # Its own pseudo-terminals and fresh secrets of the template's modules.
    assert len(hostile["pts"]) > 1 and honest["pts"] == ["ptmx"]
    assert hostile["authkey"] != honest["authkey"] and hostile["random"] != honest["random"]
    assert [line for line in honest["tmp"] if line.startswith("grading-")] == [
        honest["cwd"].split("/")[2]]          # no other student's scratch directory


@pytest.mark.slow
def test_without_a_template_grading_falls_back_to_cold_sandboxed_kernels(tmp_path):
    course, log = graded_class(tmp_path / "course", '\nc.WarmKernels.preload = ["no_such_module_for_this_test"]\n')
    notices = [line for line in log.splitlines() if "no warm kernel" in line]
    assert len(notices) == 1 and "No module named 'no_such_module_for_this_test'" in notices[0], log
    full = {gid: float(points) for gid, points in POINTS.items()}
    assert grades_in_db(course)[HONEST] == full
    _, honest = probe(course, HONEST)
    assert honest["init"] == "bwrap" and honest["unshare"] == [-1, 1] and not honest["builtin"]


def test_a_dead_template_takes_its_kernels_with_it_and_is_made_again(tmp_path):
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = Sandbox(tmp_path / "first", WarmKernelManager, warm_config())
    try:
        template = next(iter(warm_template._templates.values()))
        assert first.run("print(open('/proc/1/comm').read())")[0].strip() == "warm-init"
        server = [p for p in descendants(template.popen.pid) if "fork_server" in open(f"/proc/{p}/cmdline").read()
                  and nspid(p)[-1] == 2 and len(nspid(p)) == template.depth]   # the template, not a fork
        os.kill(server[0], signal.SIGKILL)
        first.km.provisioner.process.wait(timeout=10)
        assert first.km.describe_exit() == "killed by SIGKILL (killed: memory, CPU-time limit or grader)"
    finally:
        first.close()
    second = Sandbox(tmp_path / "second", WarmKernelManager, warm_config())
    try:
        assert second.run("print(open('/proc/1/comm').read())")[0].strip() == "warm-init"
        assert next(iter(warm_template._templates.values())) is not template
    finally:
        second.close()


def test_one_template_serves_every_copy_of_the_same_support_file(tmp_path):
    """Each Dask task grades in its own scratch course, with its own path to the same nn.py: one template each
    worker, not one per task. A different nn.py is another template."""
    from traitlets.config import Config

    def settings(folder, source="X = 1\n"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "nn.py").write_text(source)
        config = Config({"WarmKernels": {"preload_files": {"nn": str(tmp_path / folder / "nn.py")}}})
        return WarmKernelManager(config=config).template_settings()

    assert settings("task-1") == settings("task-2") != settings("task-3", "X = 2\n")
