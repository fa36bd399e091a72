"""Long output lines wrap instead of running off the page, so formgrader and the feedback pages show the
checker's diagnosis lines whole.

Both pages extend nbconvert's classic template, which prints each output in a `<pre>` (`white-space: pre`)
inside a fixed-width container: a line longer than the container is cut at its right edge, behind a scrollbar
that overlay scrollbars do not even show. This step adds one CSS rule to the styles both templates inline
(`resources["inlining"]["css"]`), after nbconvert's CSSHTMLHeaderPreprocessor has filled them.
"""
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Unicode


class WrapOutputLines(Preprocessor):
    """Append `css` to the page's inlined styles."""

    enabled = Bool(True, help="nbconvert runs only enabled preprocessors; this one is on wherever listed.").tag(
        config=True)

    css = Unicode("div.output_area pre { white-space: pre-wrap; word-break: normal; overflow-wrap: break-word; }",
                  help="CSS that makes long output lines wrap.").tag(config=True)

    def preprocess(self, nb, resources):
        resources.setdefault("inlining", {}).setdefault("css", []).append(self.css)
        return nb, resources
