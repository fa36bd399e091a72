"""Which named mistakes the class made: per item and sub-check, how many students made each one.

`python -m grading.cli.report` (`make report`) ends with it: write_report prints a table and writes
OUT/misconceptions.csv and OUT/misconceptions.png beside the grade overview.

Where the mistakes come from: the check records the grader stored in each autograded notebook's test cells
(``cell.metadata.grading.checks``: one record per sub-check of the `gradcheck.grade` call, with a stable mistake
code; source/<assignment>/gradcheck_records.py). The printed text is never read, so rewording a message changes
no report. Only cells whose grade id the gradebook lists as a test cell are read; the grader writes their
records after sanitizing has dropped every cell's student-written metadata (grading/plugins/strip_metadata.py).
A test cell's records must be exactly the sub-checks of one item, in the checker's order, or none of them is
counted and the report gets a note.
"""
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from grading import spreadsheet
from grading.course import ASSIGNMENT, CHECKS, METADATA_KEY, TRUSTED_MODULES
from grading.course_config import course_id as course_id_of, gradebook_url
from grading.reporting import bounded_read
from grading.reporting.grades import short_name
from grading.trusted.modules import TrustedModules

REGISTRY_MODULE = "gradcheck_engine"  # the trusted module whose ITEMS names every item's sub-checks

# Mistake code (gradcheck_records.py) -> the report's name for it. Codes not listed are no mistake of their own
# (None: passed, waiting for another sub-check, not attempted -- the grade table shows those) or, if failing
# and unknown here, "other".
LABELS = {
    "passed": None, "not_counted_yet": None, "not_implemented": None,
    "too_slow": "too slow (numerical gradient?)",
    "raised": "crashed",
    "right_only_at_w0": "right only at W = 0",
    "stale_cache": "stale cache",
    "outputs_swapped": "outputs swapped",
    "d_out_ignored": "d_out ignored",
    "missing_1_over_n": "missing 1/N",
    "extra_1_over_n": "extra 1/N",
    "sign_flipped": "sign flipped",
    "transposed": "transposed",
    "wrong_axis": "wrong reduction axis",
    "learning_rate_ignored": "learning rate ignored",
    "not_updated": "parameter not updated",
    "loss_after_update": "loss after the update",
    "input_modified": "input modified in place",
    "returned_none": "returned None",
    "not_an_array": "a number, not an array",
    "wrong_type": "wrong type",
    "wrong_dtype": "wrong dtype",
    "wrong_shape": "wrong shape",
    "not_finite": "NaN or inf",
    "constant_factor": "constant factor",
    "all_zeros": "all zeros",
    "wrong_values": "wrong values",
}


@dataclass(frozen=True)
class Finding:
    """One failed sub-check of one student, with the mistake it was named as."""
    student: str
    item: str  # the grade cell's short name, as in the grade report (nll_grad, multiply, ...)
    check: str
    mistake: str


@dataclass
class ClassMistakes:
    """What read_class found in a graded class."""
    findings: list  # Finding
    students: list  # every graded student, sorted
    layout: list  # (item, sub-check) in notebook and checker order
    notes: list  # one line per notebook or test cell that could not be read


class UnreadableRecords(ValueError):
    """A test cell's records are not exactly one item's sub-checks."""


def mistake_name(code):
    """The report's name of a failed sub-check's mistake code, "other" if it has none, None if it is no mistake."""
    return LABELS.get(code, "other") if isinstance(code, str) else "other"


def failed_checks(records, sub_checks):
    """(item, [(sub-check, mistake code) for each failed one]) from one test cell's stored records.

    sub_checks: item -> its sub-check names in order. Raises UnreadableRecords unless the records are exactly
    the sub-checks of one known item, in order."""
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records) or not records:
        raise UnreadableRecords("no check records" if not records else "records are not a list of objects")
    items = list(dict.fromkeys(str(r.get("item")) for r in records))
    if len(items) != 1 or items[0] not in sub_checks:
        raise UnreadableRecords(f"records of {len(items)} items ({', '.join(items)[:80]})")
    item, checks = items[0], [r.get("check") for r in records]
    if checks != sub_checks[item]:
        raise UnreadableRecords(f"{item}: sub-checks {checks} are not {sub_checks[item]}")
    return item, [(r["check"], r.get("code")) for r in records if r.get("earned") != r.get("possible")]


def sub_checks_of(course, assignment):
    """item -> its sub-check names, from the trusted checker of the course (source/<assignment>/)."""
    dirs = [str(Path(course) / "source" / assignment), str(course)]
    engine = TrustedModules(names=list(TRUSTED_MODULES), dir_templates=dirs).load(REGISTRY_MODULE)
    return {item: list(spec.points) for item, spec in engine.ITEMS.items()}


def autograder_cells(gb, assignment):
    """notebook name -> grade ids of its autograder test cells (graded code cells that are not answers)."""
    out = {}
    for nb in gb.find_assignment(assignment).notebooks:
        answers = {c.name for c in nb.solution_cells}
        out[nb.name] = {c.name for c in nb.grade_cells if c.cell_type == "code" and c.name not in answers}
    return out


def grader_records(path, grade_ids):
    """grade id -> the check records the grader stored in that test cell of the autograded notebook at path
    (first copy of each id; None when the cell has none)."""
    out = {}
    for cell in bounded_read.read_notebook(path).cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if cell.cell_type == "code" and gid in grade_ids and gid not in out:
            ours = cell.metadata.get(METADATA_KEY, {})
            out[gid] = ours.get(CHECKS) if isinstance(ours, dict) else None
    return out


def read_class(course, assignment=ASSIGNMENT, course_id=None):
    """ClassMistakes: every named mistake of every graded student of the assignment in the course."""
    course = Path(course).resolve()
    sub_checks = sub_checks_of(course, assignment)
    with Gradebook(gradebook_url(course), course_id or course_id_of(course)) as gb:
        try:
            tests = autograder_cells(gb, assignment)
        except MissingEntry:
            raise LookupError(f"assignment {assignment!r} is not in the gradebook") from None
        students = sorted(sub.student.id for sub in gb.assignment_submissions(assignment))
    found = ClassMistakes([], students, [], [])
    for student in students:
        for notebook, grade_ids in tests.items():
            path = course / "autograded" / student / assignment / f"{notebook}.ipynb"
            try:
                stored = grader_records(path, grade_ids)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                found.notes.append(f"{student}: {notebook}.ipynb not read ({type(e).__name__})")
                continue
            for gid, records in stored.items():
                try:
                    item, failed = failed_checks(records, sub_checks)
                except UnreadableRecords as e:
                    found.notes.append(f"{student}: {gid} not counted ({e})")
                    continue
                found.layout += [(short_name(gid), check) for check in sub_checks[item]]
                found.findings += [Finding(student, short_name(gid), check, name) for check, code in failed
                                   for name in [mistake_name(code)] if name]
    found.layout = list(dict.fromkeys(found.layout))
    return found


def count(findings, layout):
    """[(item, sub-check, mistake, sorted students)] in layout order ((item, sub-check) pairs), the most common
    mistake first within a sub-check."""
    who = defaultdict(set)
    for f in findings:
        who[(f.item, f.check, f.mistake)].add(f.student)
    order = {key: i for i, key in enumerate(layout)}
    keys = sorted(who, key=lambda k: (order.get(k[:2], len(order)), -len(who[k]), k[2]))
    return [(*key, sorted(who[key])) for key in keys]


def _names(students, limit=6):
    more = len(students) - limit
    return ", ".join(students[:limit]) + (f" (+{more} more)" if more > 0 else "")


def format_table(rows, class_size):
    """Aligned text: one line per item, sub-check and mistake, with how many students and who."""
    header = ["item", "sub-check", "mistake", "students", "who"]
    lines = [[item, check, mistake, f"{len(who)}/{class_size}", _names(who)] for item, check, mistake, who in rows]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(4)]
    text = ["  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths)), row[3].rjust(widths[3]), row[4]]).rstrip()
            for row in [header, *lines]]
    return "\n".join(text if lines else [*text, "(no named mistakes)"])


def write_csv(rows, class_size, path):
    with open(path, "w", newline="") as f:
        out = spreadsheet.writer(f)
        out.writerow(["item", "sub_check", "mistake", "students", "class_size", "student_ids"])
        for item, check, mistake, who in rows:
            out.writerow([item, check, mistake, len(who), class_size, " ".join(who)])


def by_mistake(rows):
    """[(item, mistake, sub-checks, students)]: the sub-checks of an item merged (one student, one count)."""
    merged = defaultdict(lambda: ([], set()))
    for item, check, mistake, who in rows:
        merged[(item, mistake)][0].append(check)
        merged[(item, mistake)][1].update(who)
    return [(item, mistake, checks, sorted(who)) for (item, mistake), (checks, who) in merged.items()]


def plot(rows, class_size, assignment, path):
    """PNG bar chart: students per item and mistake (most common on top), one colour per item."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    bars = sorted(by_mistake(rows), key=lambda r: len(r[3]))
    items = list(dict.fromkeys(r[0] for r in rows))
    colours = dict(zip(items, plt.get_cmap("tab10").colors))
    fig, ax = plt.subplots(figsize=(12, max(3, 0.45 * len(bars) + 1.5)))
    labels = [f"{item}: {mistake}  ({', '.join(checks)})" for item, mistake, checks, _ in bars]
    drawn = ax.barh(labels, [len(who) for *_, who in bars], color=[colours[b[0]] for b in bars])
    ax.bar_label(drawn, padding=3)
    ax.set(title=f"{assignment}: named mistakes in the class ({class_size} students)", xlabel="students",
           xlim=(0, max([class_size, 1])))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.spines[["top", "right"]].set_visible(False)
    if not bars:
        ax.text(0.5, 0.5, "no named mistakes", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(course, out, assignment=ASSIGNMENT, course_id=None):
    """Print the table and any notes, write out/misconceptions.csv and .png."""
    found = read_class(course, assignment, course_id)
    rows, size = count(found.findings, found.layout), len(found.students)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, size, out / "misconceptions.csv")
    plot(rows, size, assignment, out / "misconceptions.png")
    print(f"Named mistakes ({size} students, from the grader's check records):")
    print(format_table(rows, size))
    for note in found.notes:
        print(f"  note: {note}")
    print(f"wrote {out / 'misconceptions.csv'} and {out / 'misconceptions.png'}")
