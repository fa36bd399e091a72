"""The grader's side of a test cell: everything that decides a grade runs here, in nbgrader's process, and only
ever reaches student code through grading.rpc (see grading/plugins/trusted_execute.py for how the parts fit)."""
