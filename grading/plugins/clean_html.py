"""``CleanStudentHtml``: an autograde step, right after TrustedExecute, that leaves no live student HTML in the
autograded notebook -- the one file both the feedback page and formgrader's submission view are rendered from.

nbgrader's ``feedback`` and ``formgrade`` templates (nbconvert's classic template underneath) put HTML outputs,
SVG, JavaScript outputs, markdown and raw cells into the page as they are, and nbconvert's ``sanitize_html``
option does not reach nbgrader's own markdown blocks. A student's ``display(HTML('<img src=x onerror=...>'))``
or markdown ``<script>`` would run in the student's feedback page, and in formgrader inside the instructor's
authenticated Jupyter session. So, at autograde time:

* **Outputs** of every code cell (all of them come from the student's kernel, or from the grader as plain text)
  keep ``text/plain``, ``text/latex`` (escaped by the templates), PNG and JPEG images, and ``text/html`` cleaned
  by bleach to a safe subset (tables, lists, emphasis, links to http(s)/mailto, ``data:`` PNG/JPEG/GIF
  images; disallowed markup is shown as text, no attributes that run or restyle anything). ``text/markdown``
  becomes cleaned HTML. Everything else -- JavaScript, SVG, widgets, any other type -- is dropped (noted in
  ``text/plain`` when nothing is left). Output metadata keeps only numeric image width/height (the templates
  write it into unquoted attributes).
* **Markdown and raw cells** that are not exactly a cell of the released notebook (the instructor's text stays
  as it is) are rendered with nbconvert's own markdown renderer, cleaned the same way, and stored as one inert
  line of HTML that renders to itself (checked; otherwise the student's text is shown as a plain code block).
"""
import os
import re

import bleach
import nbformat
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor

KEPT_OUTPUT_TYPES = ("text/plain", "text/latex", "image/png", "image/jpeg")
IMAGE_TYPES = ("image/png", "image/jpeg")
TAGS = bleach.ALLOWED_TAGS | {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "span", "div", "table",
                              "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "img", "sub", "sup", "dl",
                              "dt", "dd", "del", "s", "kbd", "details", "summary"}
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]*\Z")


def _allowed_attribute(tag, name, value):
    if name == "title":
        return tag in ("a", "abbr", "acronym", "img")
    if tag == "a" and name == "href":
        return not value.strip().lower().startswith("data:")  # bleach allows only http(s), mailto and relative
    if tag == "img":
        return name in ("alt", "width", "height") or (name == "src" and bool(_DATA_IMAGE.match(value)))
    return tag in ("td", "th") and name in ("colspan", "rowspan")


_CLEANER = bleach.Cleaner(tags=TAGS, attributes=_allowed_attribute, protocols={"http", "https", "mailto", "data"},
                          strip=False, strip_comments=True)


def clean_html(html):
    """Student HTML reduced to the safe subset (disallowed markup escaped, so it shows as text)."""
    return _CLEANER.clean(html if isinstance(html, str) else "".join(html))


def render_markdown(source, attachments=None):
    """Markdown to HTML exactly as nbconvert's HTMLExporter renders a markdown cell (raw HTML passed through)."""
    return MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=attachments or {})).render(source)


def inert_markdown(source, attachments=None):
    """Markdown cell source that renders to the cleaned HTML of `source` and to nothing live: one line of HTML
    (a markdown HTML block ends only at a blank line), verified by rendering it again."""
    try:
        html = clean_html(render_markdown(source, attachments))
    except Exception:  # e.g. nbconvert's InvalidNotebook for a missing attachment
        html = None
    if html is not None:
        line = "<div>" + html.replace("\r", "&#13;").replace("\n", "&#10;") + "</div>"
        if render_markdown(line).strip() == line:
            return line
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", source)), default=0))
    return f"{fence}text\n{source}\n{fence}"


def clean_output(output):
    """A code cell output with only inert data left (see the module docstring)."""
    if output.get("output_type") not in ("display_data", "execute_result"):
        return output  # stream and error text is escaped by every template
    data, kept = output.get("data", {}), {}
    for mime in KEPT_OUTPUT_TYPES:
        if isinstance(data.get(mime), (str, list)):
            kept[mime] = data[mime]
    if isinstance(data.get("text/html"), (str, list)):
        kept["text/html"] = clean_html(data["text/html"])
    elif isinstance(data.get("text/markdown"), (str, list)):
        kept["text/html"] = clean_html(render_markdown(_text(data["text/markdown"])))
    dropped = sorted(set(data) - set(kept) - {"text/html", "text/markdown"})
    if not kept:
        kept["text/plain"] = f"[{', '.join(dropped) or 'empty'} output not shown]"
    output.data = nbformat.from_dict(kept)
    output.metadata = nbformat.from_dict(_image_sizes(output.get("metadata", {})))
    return output


def _text(value):
    return value if isinstance(value, str) else "".join(value)


def _image_sizes(metadata):
    sizes = {}
    for mime in IMAGE_TYPES:
        given = metadata.get(mime) if isinstance(metadata, dict) else None
        if isinstance(given, dict):
            numbers = {k: v for k, v in given.items() if k in ("width", "height")
                       and isinstance(v, (int, float)) and not isinstance(v, bool)}
            if numbers:
                sizes[mime] = numbers
    return sizes


class CleanStudentHtml(NbGraderPreprocessor):
    """Cleans outputs and student-written markdown/raw cells of the notebook being autograded."""

    def preprocess(self, nb, resources):
        self._released = self._released_cells(resources)
        return super().preprocess(nb, resources)

    def _released_cells(self, resources):
        """(cell type, source) of every markdown/raw cell of the released notebook; empty when it is missing."""
        info = resources.get("nbgrader", {})
        course = CourseDirectory(config=self.config)
        path = os.path.join(course.format_path(course.release_directory, ".", info.get("assignment", "")),
                            f"{info.get('notebook', '')}.ipynb")
        try:
            released = nbformat.read(path, as_version=4)
        except (OSError, ValueError):
            self.log.warning("CleanStudentHtml: no released notebook at %s; every markdown cell is cleaned", path)
            return set()
        return {(c.cell_type, c.source) for c in released.cells if c.cell_type in ("markdown", "raw")}

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "code":
            cell.outputs = [clean_output(output) for output in cell.get("outputs", [])]
        elif (cell.cell_type, cell.source) not in self._released:
            if cell.cell_type == "markdown":
                cell.source = inert_markdown(cell.source, cell.get("attachments"))
            else:
                cell.source = clean_html(cell.source)
            cell.pop("attachments", None)
        return cell, resources
