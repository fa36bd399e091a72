"""Issue 21, item 2: a student id that is no valid id (grading/student_ids.py) never becomes a folder of
submitted/ through an LMS zip (the real `nbgrader zip_collect` with the bundle's plugins, as `make collect-lms`
runs it), nor through the roster (grading.cli.roster), each with one line naming it.

ID_ATTACKS is the catalog: a student id in the gradebook (added by hand, as `nbgrader db student add` would) with
their Canvas user id; an honest student next to them is collected.
"""
import io
import shutil
import subprocess
import sys
import zipfile

from nbgrader.api import Gradebook

from conftest import ASSIGNMENT, NOTEBOOK, make_course, nbgrader
from grading.course import COURSE_ID

ID_ATTACKS = {   # student id -> Canvas user id
    "<img src=x onerror=alert(1)>": "1666",
    "evil\x1b]0;pwned\x07": "1667",
    "=HYPERLINK(1)": "1668",
}
HONEST = ("ada", "1001")


def test_an_lms_zip_never_makes_an_invalid_id_a_student_folder(tmp_path):
    course = make_course(tmp_path / "course")
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", COURSE_ID) as gb:
        for student, lms_id in [*ID_ATTACKS.items(), HONEST]:
            gb.update_or_create_student(student, lms_user_id=lms_id)
    archive = course / "downloaded" / ASSIGNMENT / "archive"
    archive.mkdir(parents=True)
    release = (course / "release" / ASSIGNMENT / NOTEBOOK).read_bytes()
    with zipfile.ZipFile(archive / "submissions.zip", "w") as zf:
        for n, lms_id in enumerate([*ID_ATTACKS.values(), HONEST[1]]):
            zf.writestr(f"student{n}_{lms_id}_{77000 + n}_backprop.ipynb", release)
    proc = nbgrader(course, "zip_collect", ASSIGNMENT, "--force")
    log = proc.stdout + proc.stderr
    assert sorted(p.name for p in (course / "submitted").iterdir()) == [HONEST[0]]
    for student in ID_ATTACKS:
        assert f"not collected: student id {ascii(student)} refused" in log, log
    assert "\x1b" not in log


def test_the_roster_refuses_invalid_ids_one_line_each(tmp_path):
    course = make_course(tmp_path / "course")
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    rows = io.StringIO()
    rows.write("id,first_name,last_name,email,lms_user_id\n")
    for n, student in enumerate([*ID_ATTACKS, "x" * 65, HONEST[0]]):
        rows.write(f'"{student}",F,L,s{n}@uni.example,{2000 + n}\n')
    (course / "roster.csv").write_text(rows.getvalue())
    proc = subprocess.run([sys.executable, "-m", "grading.cli.roster", "roster.csv", "--course", str(course)],
                          cwd=course, capture_output=True, text=True)
    assert "1 students imported into the gradebook, 4 rows skipped" in proc.stdout, proc.stdout
    assert proc.stdout.count("refused: a student id is") == 4 and "\x1b" not in proc.stdout
    shutil.rmtree(course)
