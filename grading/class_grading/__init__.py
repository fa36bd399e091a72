"""Class grading: every submission of an assignment through nbgrader's own Autograde, on one core or many,
locally or on Dask (grading/cli/grade_class.py is its command, `make autograde`).

class_run.py      the run: which submissions, one after another or one task each, outcomes as they finish
autograde_one.py  one submission's task: nbgrader's full Autograde in a private scratch course
local_pool.py     long-lived local worker processes (`--workers N`): their timeouts and deaths
gradebook_rows.py the workers' gradebook snapshot and the values they send back
recording.py      the coordinator, the gradebook's single writer, recording what workers graded
dask_tasks.py     Dask (`--scheduler`): the cluster, task start times, timeouts
up_to_date.py     what a rerun skips
ship_package.py   gives every Dask worker this `grading` package
problems.py       one line per submission that could not be graded, kept in autograded/problems.json
feedback.py       nbgrader's feedback for every autograded student, carrying on past failures
"""
