"""nbgrader configuration for the course bundle (In-class exercise 9: Deep Learning, Part 1B).

Everything an instructor may want to change about grading is set here, through nbgrader's traitlets.
"""
import os
import sys

c = get_config()  # noqa: F821 -- provided by nbgrader when it loads this file

# The course's own nbgrader plugins and preprocessors live in grading/ next to this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from grading.course import COURSE_ID  # noqa: E402 -- needs the sys.path entry above

# The course directory is the repository root: source/, release/, submitted/, autograded/, feedback/.
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = COURSE_ID

# What students see in place of each solution region.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Late submissions lose 10 % of their score per started day after the due date (grading/plugins/late_penalty.py).
c.AssignLatePenalties.plugin_class = "grading.plugins.late_penalty.PercentPerDayLate"
c.PercentPerDayLate.percent_per_day = 10.0

# Feedback returned to students: nbgrader's defaults plus ClearHiddenTests, because autograding restores the
# hidden tests into each test cell and nbgrader would otherwise print them in the feedback (nbgrader issue 1363).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# Autograding runs student code in a bubblewrap sandbox and decides every test cell in this trusted process
# (grading/plugins/trusted_execute.py, grading/sandbox/kernel_manager.py): nbgrader's own pipeline with its Execute step replaced.
c.Autograde.autograde_preprocessors = [
    "grading.plugins.trusted_execute.TrustedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "grading.plugins.numerics_review.FlagNumericalBackward",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.TrustedExecute.timeout = 60                      # seconds per ordinary cell
c.SandboxedKernelManager.memory_limit_mb = 2048    # address-space cap of every sandboxed process
c.TrustedExecute.max_output_bytes_per_cell = 1 << 20
# Backprop, not numerics: elementwise answers (Multiply, Sum) whose backward calls forward, uses complex numbers or
# differentiates numerically keep their points but are flagged needs_manual_grade (grading/plugins/numerics_review.py,
# c.FlagNumericalBackward.*, after SaveAutoGrades). Hidden inputs are salted per submission with the course secret
# in seed_secret (c.SeedSalt.*, grading/trusted/seed_salt.py): keep that file with gradebook.db.
# Also configurable: c.TrustedModules.* (the trusted gradcheck/nn copies test cells import, and the allow-list of
# modules the grader itself imports: grading/trusted/modules.py) and c.ScratchBuilder.* (the support files copied
# into the sandbox, never instructor-only ones: grading/sandbox/scratch.py).

# Sanitizing: nbgrader's steps, with two replaced (grading/plugins/sanitize.py) so that a duplicated cell or a forged
# schema_version costs that student the affected cells instead of stopping the whole class run.
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "grading.plugins.sanitize.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "grading.plugins.sanitize.CheckCellMetadata",
]
