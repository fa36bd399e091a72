"""nbgrader's release_feedback, releasing to everyone it can and saying in one line whom it cannot, instead of
stopping at the first such student.

The exchange hands feedback back under a name made from the submission's secret (submission_secret.txt,
written by `nbgrader submit` and carried by collect, autograde and generate_feedback). A submission that did
not come through the exchange (an LMS download, a copy made by hand) has no secret, and stock release_feedback
stops there with FileNotFoundError, leaving the students after it without feedback too (formgrader's
"Release feedback" button as well). Configured as `c.ExchangeFactory.release_feedback`.
"""
import glob
import os

from nbgrader.exchange.default import ExchangeReleaseFeedback


class ReleaseFeedback(ExchangeReleaseFeedback):
    """Skip, with one WARNING line each, the students whose feedback folder lacks the exchange's files."""

    NEEDED = ("submission_secret.txt", "timestamp.txt")

    def copy_files(self):
        skipped = self.not_from_exchange()
        for student, folder in skipped:
            self.log.warning("Feedback for %s not released: their submission did not come through the exchange "
                             "(no %s in %s); give them %s another way, e.g. through your LMS", student,
                             " or ".join(self.NEEDED), folder, os.path.join(folder, "*.html"))
        excluded = self.coursedir.student_id_exclude
        self.coursedir.student_id_exclude = ",".join(filter(None, [excluded, *(s for s, _ in skipped)]))
        try:
            super().copy_files()
        finally:
            self.coursedir.student_id_exclude = excluded

    def not_from_exchange(self):
        """[(student, feedback folder)] with feedback pages but without the exchange's files."""
        skipped = []
        for folder in sorted(glob.glob(self.src_path)):  # feedback/<student or *>/<assignment>
            pages = glob.glob(os.path.join(folder, "*.html"))
            if pages and not all(os.path.isfile(os.path.join(folder, name)) for name in self.NEEDED):
                skipped.append((os.path.basename(os.path.dirname(folder)), folder))
        return skipped
