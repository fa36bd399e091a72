"""The one pattern a student id must match, on every way in: the exchange (``nbgrader collect``,
grading/plugins/safe_collect.py), an LMS zip (grading/plugins/lms_collector.py), the roster
(grading/courses/roster.py) and ``submitted/`` itself (autograde, grading/plugins/intake.py).

An id is a folder name under submitted/ and a word in pages, terminals and spreadsheets, so it is kept to:
a letter or digit first, then letters, digits and ``. _ @ + -``, at most 64 characters (ASCII only). That refuses
markup (``<img onerror=...>``), escape sequences, spaces, path separators and a leading ``= + - @`` for
spreadsheets. Documented in docs/security.md and docs/instructors.md.
"""
import re

PATTERN = r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}"
_ID = re.compile(rf"\A{PATTERN}\Z")
RULE = "letters, digits and . _ @ + -, a letter or digit first, at most 64 characters"


def shown(text, limit=80):
    """`text` as it may appear in one line of a log: printable (escaped otherwise) and short."""
    text = str(text)
    text = text if text.isprintable() else ascii(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def id_problem(student_id):
    """Why `student_id` is refused (one line, the id shown safely), or None when it matches the pattern."""
    if isinstance(student_id, str) and _ID.match(student_id):
        return None
    return f"student id {shown(ascii(student_id))} refused: a student id is {RULE}"


def is_valid(student_id):
    """True when `student_id` matches the documented pattern."""
    return id_problem(student_id) is None
