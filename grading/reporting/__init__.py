"""Class reports read from the gradebook and the autograded notebooks: grades (grades.py) and named mistakes
(mistakes.py, from the check records the grader stored). grading/cli/report.py prints and writes them."""
