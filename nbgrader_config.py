"""nbgrader configuration for the course bundle (In-class exercise 9: Deep Learning, Part 1B).

Everything an instructor may want to change about grading is set here, through nbgrader's traitlets. Only what
differs from a trait's default is set; a setting left at its default is named with the trait whose help says
what it does (`c.Class.trait`, in the module given), and a few an instructor must see are set to their default on
purpose (tests/test_course_config.py keeps both so).
"""
import os

import nbgrader
from nbgrader.converters import Autograde
from nbgrader.coursedir import CourseDirectory

# The course's own nbgrader plugins and preprocessors: the grading package, installed into .venv by `make venv`.
from grading.course import ASSIGNMENT, COURSE_ID, NOTEBOOK, REFERENCE_MODULE
from grading.plugins.formgrader_pages import autoescape_formgrader_pages
from grading.plugins.intake import refuse_unsafe_submissions
from grading.plugins.quiet_logs import ignore_gradebook_sawarnings

c = get_config()  # noqa: F821 -- provided by nbgrader when it loads this file

# The course directory is the repository root: source/, release/, submitted/, autograded/, feedback/.
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = COURSE_ID
# The grader's reference backward passes (source/<assignment>/gradcheck_reference.py) stay instructor-side:
# generate_assignment leaves them out of release/, autograde never copies them next to a student's notebook.
c.CourseDirectory.ignore = [*CourseDirectory.class_traits()["ignore"].default(), REFERENCE_MODULE + ".py"]

# What students see in place of each solution region: nbgrader's stub, c.ClearSolutions.code_stub.

# The due date: here and nowhere else (grading/plugins/due_date.py writes it into the gradebook at every autograde,
# so changing it recomputes late penalties at the next `make autograde`). None: the gradebook's date stands (set
# to that default on purpose: an instructor must find the due date here).
# Example: c.DueDate.due_date = "2026-11-20 23:59:59 Europe/Berlin"
c.DueDate.due_date = None

# Late submissions lose a share of their score per started day after the due date (grading/plugins/late_penalty.py;
# set to its default on purpose: the late policy students are told).
c.AssignLatePenalties.plugin_class = "grading.plugins.late_penalty.PercentPerDayLate"
c.PercentPerDayLate.percent_per_day = 10.0

# Feedback returned to students: nbgrader's defaults plus ClearHiddenTests, because autograding restores the
# hidden tests into each test cell and nbgrader would otherwise print them in the feedback (nbgrader issue 1363).
# The bundle's ClearHiddenTests reads only test cells, so a marker comment in an answer cannot stop the feedback.
# BoundStudentCells (grading/plugins/page_budget.py) shows at most c.BoundStudentCells.max_cell_kb of each cell.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "grading.plugins.clear_hidden_tests.ClearHiddenTests",
    "grading.plugins.page_budget.BoundStudentCells",   # a page shows at most 64 KB of a cell (its budget)
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "grading.plugins.wrap_output.WrapOutputLines",
]

# Submission intake (grading/plugins/intake.py): before nbgrader opens anything of a submission, it is walked with
# lstat and refused whole if it holds a symbolic link, device, FIFO, socket or hard link, or is too big. nbgrader
# ignores exceptions of its pre_convert_hook, so the check goes in front of Autograde's first per-student step.
# Its caps: c.SubmissionIntake.max_files (files and folders per submission), c.SubmissionIntake.max_total_mb.
refuse_unsafe_submissions(Autograde)

# Autograding runs student code in a bubblewrap sandbox and decides every test cell in this trusted process
# (grading/plugins/trusted_execute.py, grading/sandbox/kernel_manager.py): nbgrader's own pipeline with its Execute
# step replaced.
c.Autograde.autograde_preprocessors = [
    "grading.plugins.trusted_execute.TrustedExecute",
    "grading.plugins.clean_html.CleanStudentHtml",   # no live student HTML in feedback or formgrader
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "grading.plugins.numerics_review.FlagNumericalBackward",
    "grading.plugins.due_date.DueDate",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.TrustedExecute.timeout = 60                      # seconds per ordinary cell
# Limits left at their defaults: c.TrustedExecute.notebook_timeout (wall-clock seconds for a whole notebook: when
# they run out the kernel is stopped and the remaining cells score nothing, grading/trusted/kernel_life.py; within
# it the kernel is restarted after every death or hang, c.TrustedExecute.max_kernel_restarts),
# c.TrustedExecute.max_output_bytes_per_cell, c.ScratchBuilder.disk_quota_mb (a tmpfs per notebook when grading as
# root, grading/sandbox/quota.py), c.SandboxedKernelManager.memory_limit_mb (address-space cap of every sandboxed
# process) and the other limits of grading/sandbox/kernel_manager.py.
# Warm kernels (grading/sandbox/warm_kernels.py): every grading process (nbgrader autograde, formgrader, each Dask
# worker) keeps one template in the sandbox that has imported these once, and forks each submission's kernel from
# it, isolated like a cold kernel. Without a template (not root, it cannot start, it died 3 times) kernels start
# cold in the sandbox, with one log line.
c.TrustedExecute.kernel_manager_class = "grading.sandbox.warm_kernels.WarmKernelManager"
# The notebook's imports, and what IPKernelApp.initialize imports (its debugger, shell, history database).
c.WarmKernels.preload = ["numpy", "scipy.special", "sklearn.datasets", "sklearn.metrics", "sklearn.model_selection",
                         "sklearn.preprocessing", "matplotlib", "matplotlib.pyplot", "ipykernel.kernelapp",
                         "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger", "sqlite3", "pdb"]
c.WarmKernels.preload_files = {"nn": os.path.join(c.CourseDirectory.root, "release", ASSIGNMENT, "nn.py")}
# Backprop, not numerics: elementwise answers (Multiply, Sum) whose backward calls forward, uses complex numbers or
# differentiates numerically keep their points but are flagged needs_manual_grade (grading/plugins/numerics_review.py,
# c.FlagNumericalBackward.*, after SaveAutoGrades). Hidden inputs are salted per submission (its cells and every file
# that reaches the sandbox) with the course secret in seed_secret (c.SeedSalt.*, grading/trusted/seed_salt.py): keep
# that file with gradebook.db.
# The grader's own work on student text has a budget per student, decided before the work (docs/operations.md, "The
# grader's own budget"): c.FlagNumericalBackward.max_cell_kb / max_notebook_kb (cells not parsed: flagged),
# c.CleanStudentHtml.max_kb / max_depth / max_notebook_kb (markup shown as plain text, not cleaned).
# Also configurable: c.TrustedModules.* (the trusted gradcheck/nn copies test cells import, and the allow-list of
# modules the grader itself imports: grading/trusted/modules.py) and c.ScratchBuilder.* (the support files copied
# into the sandbox, never instructor-only ones: grading/sandbox/scratch.py).

# Sanitizing: nbgrader's steps, with two replaced (grading/plugins/sanitize.py) so that a duplicated cell or a forged
# schema_version costs that student the affected cells instead of stopping the whole class run; first of all, every
# metadata key nbgrader does not write itself is dropped (grading/plugins/strip_metadata.py).
c.Autograde.sanitize_preprocessors = [
    "grading.plugins.strip_metadata.StripStudentMetadata",
    "nbgrader.preprocessors.ClearOutput",
    "grading.plugins.sanitize.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "grading.plugins.sanitize.CheckCellMetadata",
]

# LMS in and out (grading/plugins/lms_collector.py, grading/plugins/lms_export.py; docs/instructors.md, "Grades
# from and to an LMS"). `make collect-lms ZIP=...` runs `nbgrader zip_collect` with these two plugins: Canvas and
# Moodle file names are mapped to the roster's students (`make roster`), their LMS times become nbgrader's timestamps.
c.ZipCollectApp.extractor_plugin = "grading.plugins.lms_collector.SafeZipExtractor"
c.ZipCollectApp.collector_plugin = "grading.plugins.lms_collector.LmsCollector"
# The time zone of Moodle's grading worksheet (its downloader's): c.LmsCollector.lms_timezone.
# Plain `nbgrader export` writes nbgrader's CSV through the bundle's exporter: the same columns, but a name or
# other text starting with = + - @, a tab or CR gets a leading quote, never a live formula (grading/spreadsheet.py).
c.ExportApp.plugin_class = "grading.plugins.lms_export.SafeCsvExport"
# `make export` writes reports/canvas_grades.csv for this Canvas assignment: "<title> (<id>)", the id from the
# assignment's URL (.../assignments/<id>); with no id, Canvas's import creates a new assignment named title.
# (The id is set to its default on purpose: each term's Canvas assignment has its own, to be filled in here.)
c.CanvasCsvExport.title = "In-class exercise 9"
c.CanvasCsvExport.canvas_assignment_id = ""

# Pages: feedback loads MathJax from a local copy, feedback/mathjax/ (grading/plugins/feedback_page.py), and both
# feedback and formgrader wrap long output lines instead of cutting them off (grading/plugins/wrap_output.py: in
# GenerateFeedback.preprocessors above; for formgrader, grading/templates/formgrade/conf.json adds it to
# nbgrader's formgrade template, after the step that resets the page's styles).
# Formgrader's own pages (manage students, gradebook) escape every value, as its submission view does
# (grading/plugins/formgrader_pages.py: nbgrader renders them without autoescaping, values from the URL included).
autoescape_formgrader_pages()
c.GenerateFeedback.exporter_class = "grading.plugins.feedback_page.OfflineFeedbackPage"
c.HTMLExporter.extra_template_basedirs = [
    os.path.join(c.CourseDirectory.root, "grading", "templates"),
    os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions", "formgrader", "templates"),
]

# The exchange (nbgrader's release_assignment, fetch, submit, collect, release_feedback, fetch_feedback) lives in
# nbgrader's default root, /usr/local/share/nbgrader/exchange, under this course id; set c.Exchange.root to move it.
# release_feedback skips, one line each, students whose submission did not come through the exchange.
c.ExchangeFactory.release_feedback = "grading.plugins.release_feedback.ReleaseFeedback"
# collect (and formgrader's Collect button) copies regular files only, walked with lstat, never following a link,
# and takes the submission time from the exchange host's ctimes, not from the student's timestamp.txt
# (grading/plugins/safe_collect.py; docs/security.md). c.SafeCollect.timestamp_tolerance: seconds
# a timestamp.txt may disagree before it is reported; the intake's caps (c.SubmissionIntake.*) apply.
c.ExchangeFactory.collect = "grading.plugins.safe_collect.SafeCollect"

# Logs: stock nbgrader noise dropped or said once, late penalties as INFO, everything else unchanged
# (grading/plugins/quiet_logs.py).
ignore_gradebook_sawarnings()
c.Application.logging_config = {"handlers": {"console": {
    "class": "grading.plugins.quiet_logs.QuietConsoleHandler",
    "release_notebook": os.path.join(c.CourseDirectory.root, "release", ASSIGNMENT, NOTEBOOK),
}}}
