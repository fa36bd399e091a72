"""Formgrader's own pages (manage students, gradebook, ...) with every value escaped.

nbgrader 0.9.6's formgrader renders its ``.tpl`` pages with a Jinja environment made without autoescaping
(``FormgradeExtension.init_tornado_settings``), and those pages print values taken from the URL as they are:
``/formgrader/manage_students/";alert(1);"/`` runs script in the instructor's session (``var student_id =
"{{ student_id }}";``), and so does markup in a student, assignment or notebook id. The environment is not a
configurable trait, so nbgrader_config.py calls :func:`autoescape_formgrader_pages`, which turns autoescaping on
for that environment right after formgrader creates it (before any page is rendered). Inside scripts, an escaped
value cannot close its string or the ``<script>`` element. The submission view is rendered by nbconvert from
grading/templates/formgrade/, escaped there.
"""


def autoescape_formgrader_pages():
    """Make formgrader's page environment autoescape (once; a no-op without nbgrader's server extension)."""
    try:
        from nbgrader.server_extensions.formgrader.formgrader import FormgradeExtension
    except ImportError:
        return
    original = FormgradeExtension.init_tornado_settings
    if getattr(original, "autoescape", False):
        return

    def init_tornado_settings(self, webapp):
        result = original(self, webapp)
        webapp.settings["nbgrader_jinja2_env"].autoescape = True
        return result

    init_tornado_settings.autoescape = True
    FormgradeExtension.init_tornado_settings = init_tornado_settings


__all__ = ["autoescape_formgrader_pages"]
