"""nbgrader configuration for the course bundle (In-class exercise 9: Deep Learning, Part 1B).

Everything an instructor may want to change about grading is set here, through nbgrader's traitlets.
"""
import os

c = get_config()  # noqa: F821 -- provided by nbgrader when it loads this file

# The course directory is the repository root: source/, release/, submitted/, autograded/, feedback/.
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "ex09-backprop"
c.CourseDirectory.db_assignments = [{"name": "ex09_backprop"}]

# What students see in place of each solution region.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
