"""Quiet, honest logs: stock nbgrader messages that say nothing about this course's grades are dropped or said
once in one line, late penalties are INFO, and every other message passes unchanged.

nbgrader_config.py installs `QuietConsoleHandler` as the console handler of every nbgrader application
(`c.Application.logging_config`) and calls `ignore_gradebook_sawarnings()`.

- "Attribute 'checksum' for cell test_... has changed!": OverwriteCells compares every locked cell with the
  gradebook, whose test cells keep their hidden tests while the released ones do not (nbgrader issue 1961).
  When the submitted cell's checksum is the released cell's, the message is dropped (the first time, one INFO
  line says why); a test cell that differs from the release too was edited, and stays a WARNING.
- "Config option `display_data_priority` not recognized by `ClearHiddenTests`": nbgrader's preprocessors
  redeclare that option without making it configurable, so nbconvert's HTML defaults trip traitlets' check.
- "... is N seconds late", "Late submission penalty: ...": the late policy at work, INFO.
- every line: control characters (escape sequences of a student id or grade id) shown as \\xNN text
  (grading/terminal.py), never sent to the terminal raw.
- SQLAlchemy's SAWarnings from nbgrader's gradebook code (autoflush notes of SQLAlchemy 2 on nbgrader 0.9).
"""
import logging
import re
import warnings

import nbformat

from grading.terminal import clean

CHECKSUM_CHANGED = "Attribute '%s' for cell %s has changed! (should be: %s, got: %s)"  # OverwriteCells.report_change
IGNORED = re.compile(r"Config option `display_data_priority` not recognized by `\w+`")
LATE = re.compile(r".* is [\d.]+ seconds late$|Late submission penalty: ")
HIDDEN_TESTS_NOTE = ("Test cells with hidden tests differ from their released copies by design, and nbgrader "
                     "reports their checksums as changed (nbgrader issue 1961): not shown; an edited test cell "
                     "still is.")


def ignore_gradebook_sawarnings():
    from sqlalchemy.exc import SAWarning
    warnings.filterwarnings("ignore", category=SAWarning, module=r"nbgrader(\.|$)")


def released_checksums(release_notebook):
    """{grade_id: checksum} of the released notebook's cells; {} when it cannot be read."""
    try:
        nb = nbformat.read(release_notebook, as_version=4)
    except (OSError, ValueError):  # missing, or not a notebook: nothing is taken as expected
        return {}
    cells = (cell.metadata.get("nbgrader", {}) for cell in nb.cells)
    return {meta["grade_id"]: meta.get("checksum") for meta in cells if "grade_id" in meta}


class QuietConsoleHandler(logging.StreamHandler):
    """traitlets' console handler, minus the noise above. `release_notebook`: the released notebook whose test
    cell checksums are the expected ones."""

    def __init__(self, stream=None, release_notebook=None):
        super().__init__(stream)
        self.release_notebook = release_notebook
        self._released = None
        self._explained = False

    def handle(self, record):
        record = self.quieted(record)
        if record is None or record.levelno < self.level:  # a record made INFO is shown only where INFO is
            return False
        return super().handle(record)

    def format(self, record):
        return clean(super().format(record))

    def quieted(self, record):
        """The record to show (possibly made INFO), or None to drop it."""
        if record.msg == CHECKSUM_CHANGED and self.is_released_test_cell(record.args):
            if self._explained:
                return None
            self._explained = True
            record.msg, record.args = HIDDEN_TESTS_NOTE, ()
            return as_info(record)
        message = record.getMessage()
        if IGNORED.match(message):
            return None
        if record.levelno == logging.WARNING and LATE.match(message):
            return as_info(record)
        return record

    def is_released_test_cell(self, args):
        attribute, grade_id, _, got = args
        if self._released is None:
            self._released = released_checksums(self.release_notebook) if self.release_notebook else {}
        return attribute == "checksum" and got is not None and self._released.get(grade_id) == got


def as_info(record):
    record.levelno, record.levelname = logging.INFO, "INFO"
    return record
