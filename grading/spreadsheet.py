"""Every CSV the bundle writes goes through :func:`writer`: student-controlled text never becomes a live formula.

OWASP's rule for CSV injection: a cell that starts with ``= + - @``, a tab or a carriage return is taken as a
formula by Excel, LibreOffice and Google Sheets (``+1+cmd|' /C calc'!A0``, ``=HYPERLINK(...)``), so such a cell
gets a leading single quote, which spreadsheets show as text. Numbers (``-0.5``) are left as they are. Used by
nbgrader's CSV export as the bundle configures it (grading/plugins/lms_export.py: SafeCsvExport, ItemCsvExport,
CanvasCsvExport) and by the reports (grading/reporting/grades.py, mistakes.py).
"""
import csv
import re

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"\A[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")


def safe_cell(value):
    """`value` as a spreadsheet must read it: text starting with a formula character gets a leading quote."""
    if isinstance(value, str) and value.startswith(_TRIGGERS) and not _NUMBER.match(value):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer whose every text cell passes through :func:`safe_cell`."""

    def __init__(self, f, **options):
        self._out = csv.writer(f, **options)

    def writerow(self, row):
        return self._out.writerow([safe_cell(value) for value in row])

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)


def writer(f, **options):
    """A :class:`SafeWriter` on the open file `f` (options as for csv.writer)."""
    return SafeWriter(f, **options)
