"""Late-submission policy for the course: a fixed share of the score per started day late.

Configured in nbgrader_config.py (`c.AssignLatePenalties.plugin_class` and `c.PercentPerDayLate.*`);
nbgrader calls it while autograding and records the penalty in the gradebook.
"""
import math

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float


class PercentPerDayLate(LateSubmissionPlugin):
    """Deduct `percent_per_day` % of the notebook's score for each started day (24 h) after the due date."""

    percent_per_day = Float(10.0, help="Share of the score deducted per started day late, in percent.").tag(config=True)

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        days = math.ceil(total_seconds_late / 86400)
        penalty = min(score, score * self.percent_per_day / 100 * days)
        self.log.info("%s is %d day(s) late: penalty %.2f of %.2f", student_id, days, penalty, score)
        return penalty
