"""Where a course's gradebook is, as its nbgrader_config.py says."""
from pathlib import Path

from nbgrader.coursedir import CourseDirectory
from traitlets.config.loader import PyFileConfigLoader


def _config(course):
    return PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()


def course_id_from_config(course):
    """CourseDirectory.course_id as set by the course's nbgrader_config.py (nbgrader's default if unset)."""
    return _config(course).CourseDirectory.get("course_id", "default_course")


def gradebook_url(course):
    """The course gradebook's database URL: nbgrader's db_url as the course's nbgrader_config.py sets it (SQLite
    <course>/gradebook.db by default, or e.g. PostgreSQL)."""
    config = _config(course)
    coursedir = CourseDirectory(config=config)
    if "root" not in config.CourseDirectory:   # as grading.cli.roster.course_directory
        coursedir.root = str(Path(course).resolve())
    return coursedir.db_url
