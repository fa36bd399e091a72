"""The course's facts, each kept once: every module, the config and the tests read them from here."""

ASSIGNMENT = "ex09_backprop"          # nbgrader assignment id: source/<ASSIGNMENT>/, release/<ASSIGNMENT>/, ...
NOTEBOOK = "backprop.ipynb"           # the one notebook of the assignment
COURSE_ID = "ex09-backprop"           # nbgrader's CourseDirectory.course_id (the exchange and the gradebook)

# Autograded notebook metadata written by the grader, never by a student (sanitizing strips student copies):
#   nb.metadata[METADATA_KEY][PROBLEMS] -- one-line notes (kernel died, timed out, output capped, ...);
#   cell.metadata[METADATA_KEY][DUPLICATE_OF] -- a duplicated grade cell turned into an ordinary cell.
METADATA_KEY = "grading"
PROBLEMS = "problems"
DUPLICATE_OF = "duplicate_of"

PROBLEMS_FILE = "problems.json"       # autograded/problems.json: {student: one-line reason} from class grading
GRADED_FILE = "graded.json"           # autograded/graded.json: {student: digest of what class grading last graded}

# Modules test cells import from trusted copies (source/<ASSIGNMENT>/ and the course root), never the student's.
TRUSTED_MODULES = ("gradcheck", "gradcheck_engine", "nn")
