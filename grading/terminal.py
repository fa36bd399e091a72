"""Text for the instructor's terminal: no control character of a student's reaches it raw.

A student id, a file name or a cell's ``grade_id`` with escape sequences (``\\x1b]0;...\\x07``, ``\\x1b[2J``) would
retitle, clear or rewrite the instructor's terminal when printed. :func:`clean` shows every control character
but newline and tab as ``\\xNN`` text (C0, DEL, C1). Used by nbgrader's console log handler
(grading/plugins/quiet_logs.py: every log line of every nbgrader command) and, through :func:`clean_stdout`, by
the CLIs in grading/cli/ (`make report`, `make autograde`, `make feedback`, `make roster`).
"""
import contextlib
import re
import sys

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text):
    """`text` with each control character (but newline and tab) written as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class _CleanStream:
    """A text stream writing through :func:`clean` to another."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        return self._stream.write(clean(text))

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def clean_stdout():
    """sys.stdout and sys.stderr cleaned for the duration."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _CleanStream(sys.stdout), _CleanStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
