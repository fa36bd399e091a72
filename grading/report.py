"""Class grade report for one assignment, read from nbgrader's gradebook.

    python -m grading.report --course DIR [--out DIR] [--assignment ID] [--course-id ID]

prints a table (one row per student, one column per graded cell) and writes OUT/grades_by_item.csv and
OUT/grades_overview.png (score distribution and per-item pass rate). OUT defaults to DIR/reports.
The same steps are available as functions: load_report, format_table, write_csv, plot_overview.
"""
import argparse
import csv
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from traitlets.config.loader import PyFileConfigLoader

ASSIGNMENT = "ex09_backprop"


@dataclass
class StudentRow:
    """One student's submission: points per item and the totals nbgrader computes from them."""
    student: str
    items: dict  # short item name -> points
    total: float  # sum of the items, before the late penalty
    penalty: float
    score: float  # what the student gets: max(0, total - penalty), as `nbgrader export` computes it
    max_score: float


@dataclass
class Report:
    """The whole class for one assignment."""
    assignment: str
    items: list  # short item names, in notebook order
    item_max: dict  # short item name -> max points
    rows: list  # StudentRow, sorted by student id
    max_score: float


def short_name(grade_id):
    """'test_dot_product_backward' -> 'dot_product': the grade cell's name without test_/_backward."""
    return grade_id.removeprefix("test_").removesuffix("_backward")


def course_id_from_config(course):
    """CourseDirectory.course_id as set by the course's nbgrader_config.py (nbgrader's default if unset)."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    return config.CourseDirectory.get("course_id", "default_course")


def _in_notebook_order(course, assignment, notebook):
    """Grade cells of a gradebook notebook, ordered as in source/ (the gradebook keeps no order; by name if
    the source notebook is not there)."""
    path = Path(course) / "source" / assignment / f"{notebook.name}.ipynb"
    cells = nbformat.read(path, as_version=4).cells if path.exists() else []
    order = [c.metadata["nbgrader"]["grade_id"] for c in cells if c.metadata.get("nbgrader", {}).get("grade")]
    return sorted(notebook.grade_cells, key=lambda c: (order.index(c.name) if c.name in order else len(order), c.name))


def load_report(course, assignment=ASSIGNMENT, course_id=None):
    """Every submission of `assignment` in the gradebook of `course`, with per-item points."""
    course = Path(course).resolve()
    db = course / "gradebook.db"
    if not db.exists():  # Gradebook() would silently create an empty one
        raise FileNotFoundError(f"no gradebook at {db}: run `nbgrader autograde {assignment}` first")
    with Gradebook(f"sqlite:///{db}", course_id or course_id_from_config(course)) as gb:
        try:
            source = gb.find_assignment(assignment)
        except MissingEntry:
            raise LookupError(f"assignment {assignment!r} is not in {db}") from None
        # grade cell name -> max points (the assignment has one notebook; names are unique within it)
        cells = {c.name: c.max_score for nb in source.notebooks for c in _in_notebook_order(course, assignment, nb)}
        rows = []
        for sub in gb.assignment_submissions(assignment):
            points = {g.name: g.score for nb in sub.notebooks for g in nb.grades}
            penalty = sub.late_submission_penalty or 0.0
            rows.append(StudentRow(sub.student.id, {short_name(n): points.get(n, 0.0) for n in cells},
                                   sub.score, penalty, max(0.0, sub.score - penalty), sub.max_score))
        return Report(assignment, [short_name(n) for n in cells], {short_name(n): m for n, m in cells.items()},
                      sorted(rows, key=lambda r: r.student), source.max_score)


def _num(x):
    """2.0 -> '2', 0.5 -> '0.5'."""
    return f"{x:g}"


def format_table(report):
    """The report as aligned plain text: a header line, then one line per student."""
    header = ["student", *report.items, "total", "penalty", "score", "max"]
    lines = [[r.student, *map(_num, r.items.values()), _num(r.total), _num(r.penalty), _num(r.score),
              _num(r.max_score)] for r in report.rows]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def aligned(row):  # student ids left-aligned, numbers right-aligned
        return "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])
    return "\n".join(aligned(row) for row in [header, *lines])


def write_csv(report, path):
    """One row per student: student, each item's points, total, penalty, score."""
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["student", *report.items, "total", "penalty", "score"])
        for r in report.rows:
            out.writerow([r.student, *r.items.values(), r.total, r.penalty, r.score])


def pass_rates(report):
    """Item -> fraction of students with full points on it (0 for an empty class)."""
    n = len(report.rows) or 1
    return {item: sum(r.items[item] >= report.item_max[item] for r in report.rows) / n for item in report.items}


def plot_overview(report, path):
    """PNG for the instructor: score histogram (left), pass rate per item (right)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    scores = [r.score for r in report.rows]
    mean = f"{np.mean(scores):.1f}" if scores else "n/a"
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1, 1.2]})
    fig.suptitle(f"{report.assignment}: {len(scores)} students, mean score {mean} / {_num(report.max_score)}",
                 fontsize=14, fontweight="bold")

    top = report.max_score
    left.hist(scores, bins=np.arange(-0.25, top + 0.5, 0.5), color="#4477aa", edgecolor="white")
    if scores:
        left.axvline(np.mean(scores), color="#cc3311", linestyle="--", label=f"mean {mean}")
        left.legend(frameon=False)
    left.set(title="Score distribution (after late penalty)", xlabel="score", ylabel="students", xlim=(-0.5, top + 0.5))
    left.set_xticks(np.arange(0, top + 1, 1 if top <= 20 else 5))
    left.yaxis.set_major_locator(MaxNLocator(integer=True))

    rates = pass_rates(report)
    labels = [f"{i}\n({_num(report.item_max[i])} pt{'' if report.item_max[i] == 1 else 's'})" for i in report.items]
    bars = right.bar(labels, [rates[i] for i in report.items], color="#228833")
    right.bar_label(bars, labels=[f"{rates[i]:.0%}" for i in report.items], padding=3)
    right.set(title="Full points per item", ylabel="students with full points", ylim=(0, 1.12))
    right.yaxis.set_major_formatter(PercentFormatter(1.0))
    for ax in (left, right):
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    """CLI: print the table, write the CSV and PNG."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--course", required=True, type=Path, help="course directory (holds gradebook.db)")
    parser.add_argument("--out", type=Path, help="output directory (default: COURSE/reports)")
    parser.add_argument("--assignment", default=ASSIGNMENT)
    parser.add_argument("--course-id", help="default: CourseDirectory.course_id from COURSE/nbgrader_config.py")
    args = parser.parse_args(argv)
    try:
        report = load_report(args.course, args.assignment, args.course_id)
    except (FileNotFoundError, LookupError) as problem:
        parser.exit(1, f"grading.report: {problem}\n")
    out = args.out or args.course / "reports"
    out.mkdir(parents=True, exist_ok=True)
    write_csv(report, out / "grades_by_item.csv")
    plot_overview(report, out / "grades_overview.png")
    print(format_table(report))
    print(f"wrote {out / 'grades_by_item.csv'} and {out / 'grades_overview.png'}")


if __name__ == "__main__":
    main()
