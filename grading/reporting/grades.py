"""Class grade report for one assignment, read from nbgrader's gradebook: load_report, format_table, write_csv,
plot_overview (`python -m grading.cli.report` prints and writes them).

When grading a submission went wrong, its row gets a one-line "problem" note (an extra last column of the table
and the CSV, present only when some student has one); see submission_problem for where the notes come from.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from grading import spreadsheet
from grading.course_config import course_id as course_id_of, gradebook_url
from grading.course import ASSIGNMENT, METADATA_KEY, PROBLEMS, PROBLEMS_FILE
from grading.plugins.intake import SubmissionIntake
from grading.reporting import bounded_read


@dataclass
class StudentRow:
    """One student's submission: points per item and the totals nbgrader computes from them."""
    student: str
    items: dict  # short item name -> points
    total: float  # sum of the items, before the late penalty
    penalty: float
    score: float  # what the student gets: max(0, total - penalty), as `nbgrader export` computes it
    max_score: float
    problem: Optional[str] = None  # one line on what went wrong while grading the submission, if anything


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


def in_notebook_order(course, assignment, notebook):
    """Grade cells of a gradebook notebook, ordered as in source/ (the gradebook keeps no order; by name if
    the source notebook is not there)."""
    path = Path(course) / "source" / assignment / f"{notebook.name}.ipynb"
    cells = nbformat.read(path, as_version=4).cells if path.exists() else []
    order = [c.metadata["nbgrader"]["grade_id"] for c in cells if c.metadata.get("nbgrader", {}).get("grade")]
    return sorted(notebook.grade_cells, key=lambda c: (order.index(c.name) if c.name in order else len(order), c.name))


def recorded_problems(course):
    """{student: reason} from autograded/<PROBLEMS_FILE>, for submissions nbgrader could not autograde at all.

    An entry older than the student's autograded notebook is stale (graded successfully since, e.g. by a plain
    `nbgrader autograde`) and dropped. An unreadable file counts as empty."""
    path = Path(course) / "autograded" / PROBLEMS_FILE
    try:
        recorded = json.loads(path.read_text())
        written = path.stat().st_mtime
    except (OSError, ValueError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    out = {}
    for student, reason in recorded.items():
        notebooks = list((Path(course) / "autograded" / str(student)).glob("*/*.ipynb"))
        if notebooks and max(p.stat().st_mtime for p in notebooks) > written:
            continue
        lines = [line.strip() for line in str(reason).splitlines() if line.strip()]
        out[str(student)] = lines[-1] if lines else "unknown error"
    return out


def _short(notes, limit=200):
    """Notes joined into one line of at most ~limit characters, with a count of those left out."""
    text = ""
    for i, note in enumerate(notes):
        more = f" (+{len(notes) - i} more)"
        candidate = f"{text}; {note}" if text else note
        if text and len(candidate) > limit:
            return text + more
        text = candidate
    return text[:limit + 100]


def _diagnose_notebook(path):
    """What makes a submitted notebook unreadable, in one line, or None (readable, or not there)."""
    try:
        raw = bounded_read.read_bytes(path)
    except OSError:
        return None
    except ValueError as e:      # over the size limit: not read
        return str(e)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"{path.name} is not a text file (binary, or not UTF-8)"
    try:
        data = bounded_read.loads(raw, path.name)
    except bounded_read.NotebookTooLarge as e:
        return str(e)
    except ValueError as e:
        return f"{path.name} is not valid JSON ({e})"
    if not isinstance(data, dict) or not isinstance(data.get("cells", data.get("worksheets")), list):
        return f"{path.name} is JSON but not a notebook"
    try:
        nbformat.validate(nbformat.reads(text, as_version=4))
    except Exception as e:
        return f"{path.name} is not a valid notebook ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
    return None


def submission_problem(course, assignment, student, notebooks, recorded):
    """One line on what went wrong grading `student`'s submission, or None. In this order:

    0. the submission was refused at intake (grading/plugins/intake.py): "could not be autograded: submission
       refused, nothing in it was read: backprop.ipynb is a symbolic link";
    1. a notebook of the assignment (`notebooks`: names without .ipynb) missing from submitted/ (only checked
       when submitted/<student>/ exists here): "<notebook> not submitted (found: <what was there>)";
    2. nbgrader could not autograde it at all (invalid JSON, rejected metadata...): "could not be autograded:
       <reason>", the reason being what is wrong with the submitted file when that can be told from it (not JSON,
       not a notebook), else the one recorded in autograded/<PROBLEMS_FILE> by grading.cli.grade_class;
    3. the notes grading.plugins.trusted_execute.TrustedExecute left in the autograded notebook (kernel died,
       timed out, out of memory, output truncated, test cell missing...), joined;
    4. no autograded notebook at all: "not autograded: <what is wrong with the submitted file>", when that can
       be told from it, else "not autograded (no autograded notebook)".
    """
    course = Path(course)
    folder = course / "submitted" / student / assignment
    refused = SubmissionIntake.for_course(course).refusal(course / "submitted", student, assignment)
    if refused:  # decided from lstat alone: nothing of a refused submission is opened, here either
        return f"could not be autograded: {refused}"
    if (course / "submitted" / student).is_dir():
        missing = [f"{name}.ipynb" for name in notebooks if not (folder / f"{name}.ipynb").is_file()]
        if missing:
            found = sorted(p.name for p in folder.glob("*.ipynb")) if folder.is_dir() else []
            return (f"{', '.join(missing)} not submitted"
                    + (f" (found: {', '.join(found)})" if found else " (no notebook in the submission)"))
    if student in recorded:
        diagnosis = [d for d in (_diagnose_notebook(folder / f"{name}.ipynb") for name in notebooks) if d]
        return f"could not be autograded: {diagnosis[0] if diagnosis else recorded[student]}"
    notes, graded = [], 0
    for name in notebooks:
        path = course / "autograded" / student / assignment / f"{name}.ipynb"
        try:
            metadata = bounded_read.read_json(path)["metadata"]
            found = metadata.get(METADATA_KEY, {}).get(PROBLEMS, [])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        graded += 1
        prefix = f"{name}: " if len(notebooks) > 1 else ""
        notes += [prefix + n for n in found if isinstance(n, str)] if isinstance(found, list) else []
    if not graded:      # e.g. plain `nbgrader autograde`, which records no reason: say what is wrong if it shows
        diagnosis = [d for d in (_diagnose_notebook(folder / f"{name}.ipynb") for name in notebooks) if d]
        return f"not autograded: {diagnosis[0]}" if diagnosis else "not autograded (no autograded notebook)"
    return _short(notes) if notes else None


def load_report(course, assignment=ASSIGNMENT, course_id=None):
    """Every submission of `assignment` in the gradebook of `course`, with per-item points."""
    course = Path(course).resolve()
    db = gradebook_url(course)
    if db.startswith("sqlite:///") and not Path(db.removeprefix("sqlite:///")).exists():
        # Gradebook() would silently create an empty one
        raise FileNotFoundError(f"no gradebook at {db}: run `nbgrader autograde {assignment}` first")
    with Gradebook(db, course_id or course_id_of(course)) as gb:
        try:
            source = gb.find_assignment(assignment)
        except MissingEntry:
            raise LookupError(f"assignment {assignment!r} is not in {db}") from None
        # grade cell name -> max points (the assignment has one notebook; names are unique within it)
        cells = {c.name: c.max_score for nb in source.notebooks for c in in_notebook_order(course, assignment, nb)}
        notebooks = sorted(nb.name for nb in source.notebooks)
        recorded = recorded_problems(course)
        rows = []
        for sub in gb.assignment_submissions(assignment):
            points = {g.name: g.score for nb in sub.notebooks for g in nb.grades}
            penalty = sub.late_submission_penalty or 0.0
            rows.append(StudentRow(sub.student.id, {short_name(n): points.get(n, 0.0) for n in cells},
                                   sub.score, penalty, max(0.0, sub.score - penalty), sub.max_score,
                                   submission_problem(course, assignment, sub.student.id, notebooks, recorded)))
        # Submissions nbgrader never recorded (e.g. no notebook at all: nbgrader stops before creating the
        # submission) still get a row, with zero points and the reason.
        graded = {r.student for r in rows}
        submitted = {p.parent.name for p in (course / "submitted").glob(f"*/{assignment}") if p.is_dir()}
        for student in sorted((set(recorded) | submitted) - graded):
            rows.append(StudentRow(student, {short_name(n): 0.0 for n in cells}, 0.0, 0.0, 0.0, source.max_score,
                                   submission_problem(course, assignment, student, notebooks, recorded)))
        return Report(assignment, [short_name(n) for n in cells], {short_name(n): m for n, m in cells.items()},
                      sorted(rows, key=lambda r: r.student), source.max_score)


def _num(x):
    """2.0 -> '2', 0.5 -> '0.5'."""
    return f"{x:g}"


def _with_problems(report):
    return any(r.problem for r in report.rows)


def format_table(report):
    """The report as aligned plain text: a header line, then one line per student (plus a last column,
    "problem", when grading went wrong for some student)."""
    header = ["student", *report.items, "total", "penalty", "score", "max"]
    lines = [[r.student, *map(_num, r.items.values()), _num(r.total), _num(r.penalty), _num(r.score),
              _num(r.max_score)] for r in report.rows]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def aligned(row):  # student ids left-aligned, numbers right-aligned
        return "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])
    text = [aligned(row) for row in [header, *lines]]
    if _with_problems(report):  # free text, left-aligned, last
        text = [line + "  " + note for line, note in zip(text, ["problem", *(r.problem or "" for r in report.rows)])]
    return "\n".join(line.rstrip() for line in text)


def write_csv(report, path):
    """One row per student: student, each item's points, total, penalty, score (and problem, when any)."""
    problems = _with_problems(report)
    with open(path, "w", newline="") as f:
        out = spreadsheet.writer(f)
        out.writerow(["student", *report.items, "total", "penalty", "score"] + (["problem"] if problems else []))
        for r in report.rows:
            out.writerow([r.student, *r.items.values(), r.total, r.penalty, r.score]
                         + ([r.problem or ""] if problems else []))


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
