"""The gradebook as a Dask worker sees it: a private SQLite snapshot in, the student's values out, as plain data.

On a class run the coordinator (grading/class_grading/class_run.py) is the only process that opens the course gradebook
(SQLite or PostgreSQL, wherever nbgrader's ``c.CourseDirectory.db_url`` points); workers never reach it.

* :func:`structure_snapshot`, once per run: a fresh SQLite gradebook holding the assignment's structure (its
  course, the assignment with its due date, notebooks, grade/solution/task/source cells), copied row by row with
  SQLAlchemy core over nbgrader's own tables (``nbgrader.api``). It travels once per worker as ``gradebook.db``.
* :func:`student_rows`, per student: the student's row and existing submission rows (submitted notebooks,
  grades, comments), so extensions and manual scores count as in a sequential run; :func:`add_rows` puts them
  into the worker's copy of the snapshot.
* :func:`recorded_values`, on either side: what a gradebook holds for one submission, keyed by names (notebook,
  cell), every value column of nbgrader's tables -- so whatever an autograde step writes travels back.
* :func:`write_values`, on the coordinator: the values a worker's Autograde wrote (those that differ from what
  the coordinator shipped) set through nbgrader's Gradebook API.
"""
from nbgrader.api import (Assignment, Base, Comment, Grade, MissingEntry, SubmittedAssignment,
                          SubmittedNotebook)
from sqlalchemy import create_engine, select, text

# Tables of one assignment's structure, parents first (the order rows are inserted in).
STRUCTURE = ("course", "assignment", "notebook", "base_cell", "grade_cells", "solution_cells", "task_cells",
             "source_cell")
# Tables of one student's submission, parents first.
STUDENT = ("student", "submitted_assignment", "submitted_notebook", "grade", "comment")
ALEMBIC = "alembic_version"  # nbgrader's schema version, outside its metadata


def _value_columns(model):
    """The columns of a model that hold values (not its id, links or name): what autograde steps may write."""
    return [c.name for c in model.__table__.columns if not (c.primary_key or c.foreign_keys or c.name == "name")]


def _values(row, model):
    return {name: getattr(row, name) for name in _value_columns(model)}


def _structure_filters(tables, assignment_id, course_id):
    t = tables
    notebooks = select(t["notebook"].c.id).where(t["notebook"].c.assignment_id == assignment_id)
    cells = select(t["base_cell"].c.id).where(t["base_cell"].c.notebook_id.in_(notebooks))
    return {"course": t["course"].c.id == course_id, "assignment": t["assignment"].c.id == assignment_id,
            "notebook": t["notebook"].c.id.in_(notebooks), "base_cell": t["base_cell"].c.id.in_(cells),
            "grade_cells": t["grade_cells"].c.id.in_(cells), "solution_cells": t["solution_cells"].c.id.in_(cells),
            "task_cells": t["task_cells"].c.id.in_(cells),
            "source_cell": t["source_cell"].c.notebook_id.in_(notebooks)}


def _student_filters(tables, assignment_id, student):
    t = tables
    submitted, notebooks = t["submitted_assignment"], t["submitted_notebook"]
    submissions = select(submitted.c.id).where(submitted.c.assignment_id == assignment_id,
                                               submitted.c.student_id == student)
    submitted_notebooks = select(notebooks.c.id).where(notebooks.c.assignment_id.in_(submissions))
    return {"student": t["student"].c.id == student, "submitted_assignment": submitted.c.id.in_(submissions),
            "submitted_notebook": notebooks.c.id.in_(submitted_notebooks),
            "grade": t["grade"].c.notebook_id.in_(submitted_notebooks),
            "comment": t["comment"].c.notebook_id.in_(submitted_notebooks)}


def _select_rows(connection, filters, names):
    tables = Base.metadata.tables
    return {name: [dict(row._mapping) for row in connection.execute(select(tables[name]).where(filters[name]))]
            for name in names}


def _assignment_key(connection, assignment):
    table = Base.metadata.tables["assignment"]
    row = connection.execute(select(table.c.id, table.c.course_id).where(table.c.name == assignment)).first()
    if row is None:
        raise LookupError(f"assignment {assignment!r} is not in the gradebook: run `nbgrader generate_assignment`")
    return row


def structure_snapshot(db_url, assignment, path):
    """Write to `path` a new SQLite gradebook with the structure of `assignment` copied from the gradebook at
    `db_url`; returns the assignment's course id."""
    source = create_engine(db_url, future=True)
    try:
        with source.connect() as connection:
            assignment_id, course_id = _assignment_key(connection, assignment)
            rows = _select_rows(connection, _structure_filters(Base.metadata.tables, assignment_id, course_id),
                                STRUCTURE)
            versions = connection.execute(text(f"SELECT version_num FROM {ALEMBIC}")).scalars().all()
    finally:
        source.dispose()
    snapshot = create_engine(f"sqlite:///{path}", future=True)
    try:  # nbgrader's tables and schema version, as its Gradebook makes them (without running alembic)
        Base.metadata.create_all(snapshot)
        with snapshot.begin() as connection:
            connection.execute(text(f"CREATE TABLE {ALEMBIC} (version_num VARCHAR(32) NOT NULL)"))
            for version in versions:
                connection.execute(text(f"INSERT INTO {ALEMBIC} (version_num) VALUES (:v)"), {"v": version})
    finally:
        snapshot.dispose()
    add_rows(f"sqlite:///{path}", rows)
    return course_id


def student_rows(connection, assignment, student):
    """{table: [row as dict]} of `student` and their submission of `assignment` (empty lists when absent)."""
    assignment_id, _ = _assignment_key(connection, assignment)
    return _select_rows(connection, _student_filters(Base.metadata.tables, assignment_id, student), STUDENT)


def add_rows(db_url, rows):
    """Insert {table: [row as dict]} into the gradebook at `db_url` (parents first)."""
    engine = create_engine(db_url, future=True)
    try:
        with engine.begin() as connection:
            for name in (*STRUCTURE, *STUDENT):
                if rows.get(name):
                    connection.execute(Base.metadata.tables[name].insert(), rows[name])
    finally:
        engine.dispose()


def recorded_values(gb, assignment, student):
    """What the gradebook holds for `student`'s submission of `assignment`, as plain data keyed by names, or None:
    {"assignment": {...}, "submission": {...}, "notebooks": {notebook: {...}},
     "grades": {(notebook, cell): {...}}, "comments": {(notebook, cell): {...}}}."""
    try:
        submission = gb.find_submission(assignment, student)
    except MissingEntry:
        return None
    values = {"assignment": _values(submission.assignment, Assignment),
              "submission": _values(submission, SubmittedAssignment), "notebooks": {}, "grades": {}, "comments": {}}
    for notebook in submission.notebooks:
        values["notebooks"][notebook.name] = _values(notebook, SubmittedNotebook)
        values["grades"].update({(notebook.name, g.name): _values(g, Grade) for g in notebook.grades})
        values["comments"].update({(notebook.name, c.name): _values(c, Comment) for c in notebook.comments})
    return values


def _set_changed(row, before, after):
    for name, value in after.items():
        if before is None or before.get(name) != value:
            setattr(row, name, value)


def write_values(gb, assignment, student, before, after):
    """Set in `gb` the values of `after` (a worker's recorded_values) that differ from `before` (what the course
    gradebook held when the run began; None: no submission yet), creating the student and submission as nbgrader's
    Autograde does. Commits only when it creates them."""
    try:  # find first: nbgrader's update_or_create_* helpers commit, and the caller commits in batches
        gb.find_student(student)
    except MissingEntry:
        gb.add_student(student)
    try:
        submission = gb.find_submission(assignment, student)
    except MissingEntry:
        submission = gb.add_submission(assignment, student)  # with its notebooks, grades and comments
    pick = (lambda part, key: None) if before is None else (lambda part, key: before[part].get(key))
    _set_changed(submission.assignment, None if before is None else before["assignment"], after["assignment"])
    _set_changed(submission, None if before is None else before["submission"], after["submission"])
    for notebook in submission.notebooks:
        if notebook.name in after["notebooks"]:
            _set_changed(notebook, pick("notebooks", notebook.name), after["notebooks"][notebook.name])
        for part, rows in (("grades", notebook.grades), ("comments", notebook.comments)):
            for row in rows:
                key = (notebook.name, row.name)
                if key in after[part]:
                    _set_changed(row, pick(part, key), after[part][key])
