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

Budget: bleach's cleaning (html5lib) is quadratic in the nesting of the markup -- 384 KB of nested tags took
239 s in the grader's process, outside the notebook's time budget. So every piece of student HTML or markdown is
measured first, in linear time: over ``max_kb``, nesting deeper than ``max_depth`` (open tags counted, void ones
not), or beyond ``max_notebook_kb`` cleaned in all, it is not cleaned nor rendered but shown as escaped plain text
(``<pre>``, linear), and the grade report gets one line naming the cells. Within the limits a cell costs well
under a second (64 KB of honest tables: 0.2 s).
"""
import html as html_module
import os
import re

import bleach
import nbformat
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer

from grading.course import METADATA_KEY, PROBLEMS

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


_TAG = re.compile(r"<(/?)([A-Za-z][^\s/>]*)")
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
             "track", "wbr"}


def markup_depth(text):
    """How deep the tags of `text` nest (open tags but void ones +1, close tags -1), counted in one linear pass."""
    depth = deepest = 0
    for match in _TAG.finditer(text):
        if match.group(1):
            depth = max(0, depth - 1)
        elif match.group(2).lower() not in VOID_TAGS:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def plain_text(text):
    """Student markup shown as what it is, escaped: linear, nothing parsed."""
    return "<pre>" + html_module.escape(text) + "</pre>"


_CLEANER = bleach.Cleaner(tags=TAGS, attributes=_allowed_attribute, protocols={"http", "https", "mailto", "data"},
                          strip=False, strip_comments=True)


def clean_html(html):
    """Student HTML reduced to the safe subset (disallowed markup escaped, so it shows as text)."""
    return _CLEANER.clean(html if isinstance(html, str) else "".join(html))


def render_markdown(source, attachments=None):
    """Markdown to HTML exactly as nbconvert's HTMLExporter renders a markdown cell (raw HTML passed through)."""
    return MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=attachments or {})).render(source)


def inert_markdown(source, attachments=None, max_depth=None):
    """Markdown cell source that renders to the cleaned HTML of `source` and to nothing live: one line of HTML
    (a markdown HTML block ends only at a blank line), verified by rendering it again. Rendered markup nesting
    deeper than `max_depth` is not cleaned: the text is shown as a plain code block."""
    try:
        rendered = render_markdown(source, attachments)
        html = None if max_depth is not None and markup_depth(rendered) > max_depth else clean_html(rendered)
    except Exception:  # e.g. nbconvert's InvalidNotebook for a missing attachment
        html = None
    if html is not None:
        line = "<div>" + html.replace("\r", "&#13;").replace("\n", "&#10;") + "</div>"
        if render_markdown(line).strip() == line:
            return line
    return fenced(source)


def fenced(source):
    """A markdown code block showing `source` as text (linear to render)."""
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

    max_kb = Integer(256, help="Student HTML or markdown larger than this (per output or cell) is shown as escaped "
                               "plain text, not cleaned.").tag(config=True)
    max_depth = Integer(100, help="Markup whose tags nest deeper than this is shown as escaped plain text (bleach's "
                                  "cleaning is quadratic in the nesting).").tag(config=True)
    max_notebook_kb = Integer(2048, help="Student HTML and markdown cleaned per notebook at most; the rest is shown "
                                         "as escaped plain text.").tag(config=True)

    def preprocess(self, nb, resources):
        self._released = self._released_cells(resources)
        self._left, self._plain = self.max_notebook_kb << 10, []
        nb, resources = super().preprocess(nb, resources)
        if self._plain:
            cells = ", ".join(str(i) for i in self._plain[:5]) + (" ..." if len(self._plain) > 5 else "")
            nb.metadata.setdefault(METADATA_KEY, {}).setdefault(PROBLEMS, []).append(
                f"markup over the cleaning limits ({self.max_kb} KB, {self.max_depth} levels deep, "
                f"{self.max_notebook_kb} KB in all) shown as plain text: cell {cells}")
        return nb, resources

    def _within_budget(self, text, index):
        """May `text` be cleaned? (Charged against the notebook's cleaning budget when it may.)"""
        size = len(text)
        if size > self.max_kb << 10 or size > self._left or markup_depth(text) > self.max_depth:
            if index not in self._plain:
                self._plain.append(index)
            return False
        self._left -= size
        return True

    def _clean_output(self, output, index):
        data = output.get("data", {}) if output.get("output_type") in ("display_data", "execute_result") else {}
        for mime in ("text/html", "text/markdown"):
            if isinstance(data.get(mime), (str, list)):
                text = _text(data[mime])
                if not self._within_budget(text, index):
                    kept = {m: data[m] for m in KEPT_OUTPUT_TYPES if isinstance(data.get(m), (str, list))}
                    output.data = nbformat.from_dict({**kept, "text/html": plain_text(text)})
                    output.metadata = nbformat.from_dict(_image_sizes(output.get("metadata", {})))
                    return output
                break
        return clean_output(output)

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
            cell.outputs = [self._clean_output(output, cell_index) for output in cell.get("outputs", [])]
        elif (cell.cell_type, cell.source) not in self._released:
            if not self._within_budget(cell.source, cell_index):
                cell.source = plain_text(cell.source) if cell.cell_type == "raw" else fenced(cell.source)
            elif cell.cell_type == "markdown":
                cell.source = inert_markdown(cell.source, cell.get("attachments"), self.max_depth)
            else:
                cell.source = clean_html(cell.source)
            cell.pop("attachments", None)
        return cell, resources
