"""Course directories and who is in them: a fresh course made from this repository (course_dir.py, for the tests
and benchmarks), the demo's course (demo_course.py) and its sample class (sample_class.py), the roster import
(roster.py), and the instructor notebook run top to bottom (instructor_notebook.py)."""
