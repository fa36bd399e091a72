"""nbgrader's feedback page, readable offline: MathJax from a pinned local copy, not a CDN.

nbgrader's feedback template calls nbconvert's `mathjax()` macro without HTMLExporter.mathjax_url, so stock
pages always load MathJax from a CDN and show raw LaTeX offline. This exporter
(`c.GenerateFeedback.exporter_class`) supplies that macro itself, loading `mathjax_url`, and writes the files
there: the single-file MathJax 3 build `tex-svg-full.js` (TeX input, SVG output: no font files, nothing loaded
later) from the pinned package django-static-mathjax, and its settings `config.js` ($...$ as in Jupyter).
By default they land once in feedback/mathjax/, shared by every page (feedback/<student>/<assignment>/*.html).
"""
import posixpath
from importlib.resources import files
from urllib.parse import urlsplit

from jinja2 import DictLoader
from markupsafe import escape
from nbconvert.exporters import HTMLExporter
from traitlets import default

LIBRARY = "tex-svg-full.js"
SETTINGS = "config.js"
# No inline script, handler, frame, form, font or fetch; inline styles (the template's own, MathJax's SVG) and data:
# images (the notebook's plots) only. Student HTML is also cleaned at autograde time (grading/plugins/clean_html.py).
CSP = ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; script-src {scripts}; '
       "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">")
SETTINGS_JS = ("// MathJax settings of the feedback pages: $...$ and $$...$$ as in Jupyter.\n"
               'window.MathJax = {tex: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], processEscapes: true}};\n')


def mathjax_library():
    """The bytes of the pinned MathJax build (package django-static-mathjax, module `mathjax`)."""
    try:
        return (files("mathjax") / "static" / "mathjax" / "es5" / LIBRARY).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as error:
        raise RuntimeError(f"MathJax for the feedback pages is missing ({error}): run `make venv`, which "
                           "installs the pinned django-static-mathjax from requirements.txt") from error


class OfflineFeedbackPage(HTMLExporter):
    """HTMLExporter for nbgrader's feedback template with MathJax loaded from `mathjax_url`; a relative
    `mathjax_url` (the default) gets the files written there, relative to the page."""

    @default("mathjax_url")
    def _shared_copy(self):
        return f"../../mathjax/{LIBRARY}"  # from feedback/<student>/<assignment>/ to feedback/mathjax/

    def _local(self):
        url = urlsplit(self.mathjax_url)
        return not (url.scheme or url.netloc or url.path.startswith("/"))

    def _settings_url(self):
        return posixpath.join(posixpath.dirname(self.mathjax_url), SETTINGS)

    @default("extra_loaders")
    def _mathjax_macro(self):
        """nbgrader's feedback template calls mathjax() in <head>: the page's Content-Security-Policy goes there
        too, before any student content. Scripts only from files (MathJax's two), none inline, no handlers."""
        scripts = [self._settings_url()] if self._local() else []
        sources = "'self'" if self._local() else f"{escape(self._origin())}"
        tags = "\n".join([CSP.format(scripts=sources)]
                         + [f'<script src="{escape(src)}"></script>' for src in [*scripts, self.mathjax_url]])
        return [DictLoader({"mathjax.html.j2": "{%- macro mathjax(url=None) -%}\n" + tags + "\n{%- endmacro %}"})]

    def _origin(self):
        url = urlsplit(self.mathjax_url)
        return f"{url.scheme}://{url.netloc}"

    def from_notebook_node(self, nb, resources=None, **kw):
        output, resources = super().from_notebook_node(nb, resources, **kw)
        if self._local():  # nbconvert's FilesWriter writes "outputs" relative to the page's directory
            resources.setdefault("outputs", {}).update({self.mathjax_url: mathjax_library(),
                                                        self._settings_url(): SETTINGS_JS.encode()})
        return output, resources
