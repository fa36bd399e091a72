"""The assignment's due date, kept in nbgrader_config.py (`c.DueDate.due_date`) and nowhere else.

nbgrader keeps the due date in the gradebook (the assignment's `duedate`) and computes each late penalty from
it while autograding (AssignLatePenalties), storing the penalty with the submission. This step runs just
before that one and writes the configured date into the gradebook, so the date in nbgrader_config.py is the
one every autograde uses: change it, and the next autograde of a submission recomputes its penalty.
Unset (None), the gradebook's date stands (`nbgrader db assignment add --duedate`, formgrader).
"""
from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import parse_utc
from traitlets import TraitError, Unicode, validate


class DueDate(NbGraderPreprocessor):
    """Write `due_date` into the gradebook as the assignment's due date (naive UTC, as nbgrader stores it)."""

    due_date = Unicode(
        None, allow_none=True,
        help='Due date with its time zone, e.g. "2026-11-20 23:59:59 Europe/Berlin" or "... UTC"; None: keep '
             "the gradebook's.").tag(config=True)

    @validate("due_date")
    def _parses(self, proposal):
        try:
            parse_utc(proposal.value)
        except (ValueError, OverflowError) as error:  # dateutil's ParserError is a ValueError
            raise TraitError(f"DueDate.due_date {proposal.value!r} is not a date nbgrader can read: {error}")
        return proposal.value

    def preprocess(self, nb, resources):
        if self.due_date is None:
            return nb, resources
        due = parse_utc(self.due_date).replace(tzinfo=None)
        with Gradebook(resources["nbgrader"]["db_url"]) as gb:
            assignment = gb.find_assignment(resources["nbgrader"]["assignment"])
            if assignment.duedate != due:
                self.log.info("Due date of %s: %s UTC, from nbgrader_config.py (the gradebook had %s)",
                              assignment.name, due, assignment.duedate)
                assignment.duedate = due
                gb.db.commit()
        return nb, resources
