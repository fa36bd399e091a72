"""The course's facts, each kept once: every module, the config and the tests read them from here."""

ASSIGNMENT = "ex09_backprop"          # nbgrader assignment id: source/<ASSIGNMENT>/, release/<ASSIGNMENT>/, ...
NOTEBOOK = "backprop.ipynb"           # the one notebook of the assignment
COURSE_ID = "ex09-backprop"           # nbgrader's CourseDirectory.course_id (the exchange and the gradebook)

# Autograded notebook metadata written by the grader, never by a student (sanitizing strips student copies):
#   nb.metadata[METADATA_KEY][PROBLEMS] -- one-line notes (kernel died, timed out, output capped, ...);
#   cell.metadata[METADATA_KEY][DUPLICATE_OF] -- a duplicated grade cell turned into an ordinary cell;
#   cell.metadata[METADATA_KEY][CHECKS] -- a test cell's check records (one JSON object per sub-check graded),
#   read by the misconception report (grading/reporting/mistakes.py).
METADATA_KEY = "grading"
PROBLEMS = "problems"
DUPLICATE_OF = "duplicate_of"
CHECKS = "checks"

PROBLEMS_FILE = "problems.json"       # autograded/problems.json: {student: one-line reason} from class grading
GRADED_FILE = "graded.json"           # autograded/graded.json: {student: digest of what class grading last graded}

# Modules test cells import from trusted copies (source/<ASSIGNMENT>/ and the course root), never the student's.
# The checker is a small set of modules shipped next to the notebook (gradcheck_engine.py says which does what).
TRUSTED_MODULES = ("gradcheck", "gradcheck_engine", "gradcheck_records", "gradcheck_text", "gradcheck_display",
                   "gradcheck_values", "gradcheck_compare", "gradcheck_layers", "gradcheck_models", "nn",
                   "gradcheck_reference")
# The instructor's reference backward passes: source/<ASSIGNMENT>/<REFERENCE_MODULE>.py, a trusted module that is
# never released (nbgrader_config.py's CourseDirectory.ignore) and never copied next to a student's notebook.
REFERENCE_MODULE = "gradcheck_reference"
RECORDS_MODULE = "gradcheck_records"   # the trusted module test cells hand their check records to
