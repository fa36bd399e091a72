"""A course's configuration, loaded in one place: its nbgrader_config.py, read the way nbgrader reads it.

Every command and library module that needs the course's settings (where the gradebook is, the course id, the
directories, nbgrader's API) gets them from here, so there is one loader and one reading of each setting.

    load_course_config(course) -> traitlets Config   (nbgrader_config.py executed, as nbgrader does)
    course_directory(course)   -> nbgrader CourseDirectory (root: the config's, else the course folder)
    course_id(course)          -> CourseDirectory.course_id, or the gradebook's default course id
    gradebook_url(course)      -> CourseDirectory.db_url (SQLite <course>/gradebook.db unless configured)
    nbgrader_api(course, ...)  -> NbGraderAPI (autograde, generate_feedback, ...) configured by the course

Loading executes nbgrader_config.py, with its side effects: it puts the course folder first on sys.path (so the
course's own `grading` plugins import) and installs the intake check on nbgrader's Autograde.
"""
from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from traitlets.config.loader import PyFileConfigLoader

CONFIG_FILE = "nbgrader_config.py"
GRADEBOOK_DEFAULT_COURSE_ID = "default_course"   # what nbgrader's Gradebook calls a course with no course_id


def load_course_config(course):
    """The Config that the course's nbgrader_config.py sets (a fresh one at each call: callers may change it)."""
    return PyFileConfigLoader(CONFIG_FILE, path=str(course)).load_config()


def course_directory(course, config=None):
    """nbgrader's CourseDirectory as the course's configuration sets it; its root is the course folder unless
    the configuration names one (the course's nbgrader_config.py names the folder it is in)."""
    config = load_course_config(course) if config is None else config
    if "root" not in config.CourseDirectory:  # in the config too: plugins make their own CourseDirectory from it
        config.CourseDirectory.root = str(Path(course).resolve())
    return CourseDirectory(config=config)


def course_id(course):
    """CourseDirectory.course_id as the course's configuration sets it (the gradebook's default if unset)."""
    return load_course_config(course).CourseDirectory.get("course_id", GRADEBOOK_DEFAULT_COURSE_ID)


def gradebook_url(course):
    """The course gradebook's database URL: nbgrader's db_url as configured (SQLite <root>/gradebook.db by
    default, or e.g. PostgreSQL)."""
    return course_directory(course).db_url


def nbgrader_api(course, **overrides):
    """nbgrader's own API object for `course`, configured by its configuration plus `overrides`
    ({section: {trait: value}}, e.g. CourseDirectory={"db_url": ...})."""
    from nbgrader.apps import NbGraderAPI  # here: plugins import this module, and nbgrader.apps imports every app
    config = load_course_config(course)
    for section, values in overrides.items():
        for key, value in values.items():
            setattr(config[section], key, value)
    return NbGraderAPI(course_directory(course, config), config=config)
