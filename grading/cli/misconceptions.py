"""Which named mistakes the class made: per item and sub-check, how many students made each one.

`python -m grading.cli.report` (`make report`) ends with it: write_report prints a table and writes
OUT/misconceptions.csv and OUT/misconceptions.png beside the grade overview.

Where the names come from: the lines `gradcheck.grade` printed in each autograded notebook's test cells
("  ✗ d_W   0/1  d_W: missing 1/N (off by a factor N = 7); worst ..."). Only cells whose grade id the gradebook
lists as a test cell are read, and their outputs are written by the grader (grading.plugins.trusted_execute),
never by student code. Two parts of a diagnosis still quote the student: an exception's type and message
("raised ...") and a returned array's dtype; the mistake is named from the text before them. A test cell's
output must be exactly one `grade` block -- its header and every sub-check of the item, in the checker's order --
or none of it is counted and the student gets a note (a type name with a line break could forge lines).
"""
import csv
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from grading.cli.report import course_id_from_config, gradebook_url, short_name
from grading.course import ASSIGNMENT, TRUSTED_MODULES
from grading.trusted.modules import TrustedModules

REGISTRY_MODULE = "gradcheck_engine"  # the trusted module whose ITEMS names every item's sub-checks

# Mistake name -> pattern of the checker's wording, first match wins. None: no mistake of its own -- a sub-check
# waiting for another one ("not counted yet: ..."), or an answer not attempted (the grade table shows those).
MISTAKES = [
    (None, r"^not (counted|checked) yet|^not implemented yet"),
    ("too slow (numerical gradient?)", r"^too slow on the large case"),
    ("crashed", r" raised $"),
    ("right only at W = 0", r"right only at W = 0"),
    ("stale cache", r"stale cache"),
    ("outputs swapped", r"outputs swapped|outputs in the wrong order"),
    ("d_out ignored", r"d_out ignored"),
    ("missing 1/N", r"missing 1/N"),
    ("extra 1/N", r"extra 1/N"),
    ("sign flipped", r"sign flipped"),
    ("transposed", r"transposed"),
    ("wrong reduction axis", r"wrong axis"),
    ("learning rate ignored", r"learning rate ignored"),
    ("parameter not updated", r"was not updated"),
    ("loss after the update", r"after the update instead of before"),
    ("input modified in place", r"modified its input"),
    ("returned None", r"\bNone\b"),
    ("a number, not an array", r"must be an array shaped like"),
    ("wrong type", r"has type $|returned type|expected a tuple|expected a float"),
    ("wrong dtype", r"has dtype $"),
    ("wrong shape", r"has shape|values, expected"),
    ("NaN or inf", r"NaN or inf|is (nan|-?inf)$"),
    ("constant factor", r"constant factor"),
    ("all zeros", r"all zeros"),
    ("wrong values", r"is wrong"),
]
# Where the student's own text starts inside a diagnosis: an exception ("raised <type>: <message>"), a type or dtype.
STUDENT_TEXT = re.compile(r"(?<= raised )|(?<= has type )|(?<= has dtype )")
HEADER = re.compile(r"^(?P<item>\S.*): [\d.]+ / [\d.]+ points$")
SUB_CHECK = re.compile(r"^  (?P<mark>[✓✗]) (?P<check>\S.*?) +[\d.]+/[\d.]+(?:  (?P<why>.*))?$")


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


class UnreadableOutput(ValueError):
    """A test cell's output is not exactly one grade block."""


def mistake_name(diagnosis):
    """The named mistake of one sub-check's diagnosis, "other" if none fits, None if it is no mistake."""
    text = STUDENT_TEXT.split(diagnosis, maxsplit=1)[0]
    for name, pattern in MISTAKES:
        if re.search(pattern, text):
            return name
    return "other"


def parse_grade_output(text, sub_checks):
    """(item, [(sub-check, diagnosis) for each failed one]) from what one `gradcheck.grade` call printed.

    sub_checks: item -> its sub-check names in order. Raises UnreadableOutput unless the text holds exactly one
    header of a known item and exactly its sub-check lines, in order (other lines, e.g. the self-check's, are
    ignored)."""
    lines = text.splitlines()
    headers = [m["item"] for m in map(HEADER.match, lines) if m]
    if len(headers) != 1 or headers[0] not in sub_checks:
        raise UnreadableOutput(f"{len(headers)} grade headers ({', '.join(headers)[:80]})")
    rows = [m for m in map(SUB_CHECK.match, lines) if m]
    item = headers[0]
    if [m["check"] for m in rows] != sub_checks[item]:
        raise UnreadableOutput(f"{item}: sub-checks {[m['check'] for m in rows]} are not {sub_checks[item]}")
    return item, [(m["check"], m["why"] or "") for m in rows if m["mark"] == "✗"]


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


def grader_outputs(path, grade_ids):
    """grade id -> stdout of that test cell in the autograded notebook at path (first copy of each id)."""
    out = {}
    for cell in nbformat.read(path, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if cell.cell_type == "code" and gid in grade_ids and gid not in out:
            out[gid] = "".join(o.get("text", "") for o in cell.outputs
                               if o.get("output_type") == "stream" and o.get("name") == "stdout")
    return out


def read_class(course, assignment=ASSIGNMENT, course_id=None):
    """ClassMistakes: every named mistake of every graded student of the assignment in the course."""
    course = Path(course).resolve()
    sub_checks = sub_checks_of(course, assignment)
    with Gradebook(gradebook_url(course), course_id or course_id_from_config(course)) as gb:
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
                outputs = grader_outputs(path, grade_ids)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                found.notes.append(f"{student}: {notebook}.ipynb not read ({type(e).__name__})")
                continue
            for gid, text in outputs.items():
                try:
                    item, failed = parse_grade_output(text, sub_checks)
                except UnreadableOutput as e:
                    found.notes.append(f"{student}: {gid} not counted ({e})")
                    continue
                found.layout += [(short_name(gid), check) for check in sub_checks[item]]
                found.findings += [Finding(student, short_name(gid), check, name) for check, why in failed
                                   for name in [mistake_name(why)] if name]
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
        out = csv.writer(f)
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
    print(f"Named mistakes ({size} students, from the grader's test-cell output):")
    print(format_table(rows, size))
    for note in found.notes:
        print(f"  note: {note}")
    print(f"wrote {out / 'misconceptions.csv'} and {out / 'misconceptions.png'}")
