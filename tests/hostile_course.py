"""Courses for the hostile/malformed catalogs (tests/hostile_catalog.py): built with the real nbgrader pipeline,
plus the checks every catalog test shares (gradebook contents, instructor-only text, file hashes, pipes opened).
Submissions are looked at with lstat only, as the grader does: a link or pipe in one is never followed here."""
import errno
import hashlib
import html
import json
import os
import re
import sqlite3
import stat
import threading
from pathlib import Path

import nbformat

from conftest import ASSIGNMENT, SOURCE_NB, write_test_secret, make_course, nbgrader, solution_and_hidden_lines
from grading.courses.sample_class import solution_sources
from hostile_catalog import NOTEBOOK, POINTS, Context, honest

HONEST = "zz-honest"  # graded last: whatever a cheat broke would show in this student's grade
# A tighter cell timeout for the catalog courses, so the infinite loop is quick -- still 3x what the slowest honest
# cell (the imports) takes on a loaded 2-core machine. The memory cap stays: this notebook's imports alone
# reserve ~1.1 GB of address space.
CATALOG_CONFIG = """
# --- catalog test course (tests/hostile_course.py) ---
c.TrustedExecute.timeout = 15
c.TrustedExecute.interrupt_grace = 3
"""


def build_class(root, entries, honest_student=HONEST):
    """A course with the assignment released and one submission per catalog entry (student id = entry name)
    plus an honest, fully correct student. Returns the course directory."""
    course = make_course(root)
    config = course / "nbgrader_config.py"
    config.write_text(config.read_text() + CATALOG_CONFIG)
    write_test_secret(course)
    nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    ctx = Context(course / "release" / ASSIGNMENT, solution_sources(SOURCE_NB), outside=course.parent / "outside")
    for entry in entries:
        entry.build(ctx, course / "submitted" / entry.name / ASSIGNMENT)
    if honest_student:
        honest(ctx, course / "submitted" / honest_student / ASSIGNMENT)
    students = sorted(p.name for p in (course / "submitted").iterdir())
    (course / "students.csv").write_text("id\n" + "\n".join(students) + "\n")
    nbgrader(course, "db", "student", "import", "students.csv")
    return course


def _regular_files(root):
    """(relative path, path) of every regular file below root with one name, found with lstat: links are not
    followed (root itself included), and pipes, devices and hard links are left alone."""
    if not (os.path.lexists(root) and stat.S_ISDIR(os.lstat(root).st_mode)):
        return
    for top, dirs, files in os.walk(root):
        for name in sorted(files):
            path = Path(top) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                yield str(path.relative_to(root)), path


def hash_tree(root):
    """relative path -> sha256 of every regular file below root, and what every other entry is (a link's
    target, a pipe, ...), without following or opening any of them."""
    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                out[str(path.relative_to(root))] = f"link to {os.readlink(path)}"
            elif not stat.S_ISDIR(st.st_mode):
                out[str(path.relative_to(root))] = stat.filemode(st.st_mode)
    return out


# What a feedback page or formgrader view must never contain once cleaned: script elements, event-handler
# attributes, javascript: URLs (searched in the page's body; the head is the template's own).
LIVE_MARKUP = re.compile(r"<script|<[^>]*\son[a-z]+\s*=|javascript:", re.I)


class PipeWatch:
    """Notes every named pipe below `roots` that some process opens for reading while the watch runs (reading a
    pipe blocks until a writer comes: the watcher is that writer, and closes at once, so the reader sees EOF).
    Pipes are what the intake catalog plants, inside submissions and outside the course behind links."""

    def __init__(self, *roots):
        self.pipes = sorted(Path(top) / name for root in roots if Path(root).is_dir()
                            for top, dirs, files in os.walk(root) for name in files
                            if stat.S_ISFIFO((Path(top) / name).lstat().st_mode))
        self.opened, self._stop = set(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self._stop.wait(0.05):
            for pipe in self.pipes:
                try:
                    os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
                except OSError as e:
                    if e.errno != errno.ENXIO:  # ENXIO: nobody has it open for reading
                        raise
                else:
                    self.opened.add(str(pipe))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def db_rows(course, sql, *args):
    con = sqlite3.connect(f"file:{course / 'gradebook.db'}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def grades_in_db(course):
    """student -> {grade id: score} straight from the SQLite tables (score = manual if set, else auto)."""
    rows = db_rows(course, """
        SELECT sa.student_id, bc.name, COALESCE(g.manual_score, g.auto_score, 0) + COALESCE(g.extra_credit, 0)
        FROM grade g JOIN base_cell bc ON g.cell_id = bc.id
        JOIN submitted_notebook sn ON g.notebook_id = sn.id
        JOIN submitted_assignment sa ON sn.assignment_id = sa.id""")
    out = {}
    for student, gid, score in rows:
        out.setdefault(student, {})[gid] = float(score)
    return out


def instructor_tables(course):
    """The assignment's definition in the gradebook (what no submission may change)."""
    return {table: db_rows(course, f"SELECT * FROM {table} ORDER BY id")
            for table in ("course", "assignment", "notebook", "base_cell", "grade_cells", "solution_cells",
                          "source_cell", "task_cells")}


def gradebook_consistency_problems(course, students):
    """What is wrong with the gradebook's per-student tables: [] when every student has exactly one
    submission, one submitted notebook and one grade row per grade cell, and nothing else is in there."""
    problems = []
    tables = {t for (t,) in db_rows(course, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    expected_tables = {"alembic_version", "assignment", "base_cell", "comment", "course", "grade", "grade_cells",
                       "notebook", "solution_cells", "source_cell", "student", "submitted_assignment",
                       "submitted_notebook", "task_cells"}
    if tables - expected_tables:
        problems.append(f"unexpected tables {sorted(tables - expected_tables)}")
    subs = db_rows(course, "SELECT student_id, COUNT(*) FROM submitted_assignment GROUP BY student_id")
    if sorted(s for s, _ in subs) != sorted(students) or any(n != 1 for _, n in subs):
        problems.append(f"submissions per student: {subs}")
    for table, key in (("submitted_notebook", "assignment_id, notebook_id"),
                       ("grade", "notebook_id, cell_id"), ("comment", "notebook_id, cell_id")):
        dups = db_rows(course, f"SELECT {key}, COUNT(*) FROM {table} GROUP BY {key} HAVING COUNT(*) > 1")
        if dups:
            problems.append(f"duplicate rows in {table}: {dups}")
    per_student = db_rows(course, """
        SELECT sa.student_id, COUNT(g.id) FROM submitted_assignment sa
        JOIN submitted_notebook sn ON sn.assignment_id = sa.id JOIN grade g ON g.notebook_id = sn.id
        GROUP BY sa.student_id""")
    if sorted(per_student) != sorted((s, len(POINTS)) for s in students):
        problems.append(f"grade rows per student: {per_student}")
    over = db_rows(course, """SELECT g.cell_id, g.auto_score, gc.max_score FROM grade g JOIN grade_cells gc
                              ON g.cell_id = gc.id WHERE g.auto_score > gc.max_score OR g.auto_score < 0
                              OR g.manual_score IS NOT NULL OR g.extra_credit IS NOT NULL""")
    if over:
        problems.append(f"scores out of range: {over}")
    return problems


def _text(value):
    """A notebook text field as one string (nbformat stores multi-line text as a list of lines)."""
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return "".join(value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _output_text(nb):
    """Everything the outputs of a notebook (JSON, as stored) show: texts, errors, every data value."""
    parts = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            parts += [_text(out.get(key)) for key in ("text", "ename", "evalue") if key in out]
            parts += [_text(x) for x in out.get("traceback", [])]
            parts += [_text(value) for value in (out.get("data") or {}).values()]
    return "\n".join(parts)


def _html_text(page):
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _student_lines(course, student):
    """Stripped lines of everything the student submitted (text files), which are theirs to see."""
    lines = set()
    folder = course / "submitted" / student
    if os.path.islink(folder):
        return lines
    for _, path in _regular_files(folder / ASSIGNMENT):
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        try:
            nb = json.loads(text)
            text = "\n".join("".join(c.get("source", "")) if isinstance(c.get("source"), list) else
                             c.get("source", "") for c in nb.get("cells", []) if isinstance(c, dict))
            text += "\n".join("".join(c.get("input", "")) if isinstance(c.get("input"), list) else
                              str(c.get("input", "")) for ws in nb.get("worksheets", []) for c in ws.get("cells", []))
        except (ValueError, AttributeError):
            pass
        lines.update(line.strip() for line in text.splitlines())
    return lines


def leaked_lines(course, student):
    """Instructor-only lines (solution and hidden-test regions of source/, and the course secret) that the student
    did not write and that appear in the outputs of their autograded notebook or in their feedback page."""
    secret = solution_and_hidden_lines() - _student_lines(course, student)
    shown = []
    autograded = course / "autograded" / student / ASSIGNMENT / NOTEBOOK
    if autograded.exists():
        shown.append(_output_text(json.loads(autograded.read_text())))
    for page in (course / "feedback" / student / ASSIGNMENT).glob("*.html"):
        shown.append(_html_text(page.read_text()))
    text = "\n".join(shown)
    secret_file = course / "seed_secret"     # the course secret salts the hidden inputs: instructor-only
    secret |= {secret_file.read_text().strip()} if secret_file.exists() else set()
    return sorted(line for line in secret if line in text)


def outputs_of_tests(course, student):
    """grade id -> outputs of that test cell in the autograded notebook (execution counts dropped)."""
    nb = nbformat.read(course / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: [{k: v for k, v in o.items() if k != "execution_count"}
                                                 for o in c.outputs]
            for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") in POINTS}
