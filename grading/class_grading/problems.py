"""One line per submission that could not be graded: from an exception, from nbgrader's API result, and kept in
autograded/<PROBLEMS_FILE> ({student: one-line reason}), which the grade report reads."""
import json
import os
import re
from pathlib import Path

from grading.course import PROBLEMS_FILE


def one_line(error):
    """An exception as the one line a student's row shows: "Type: first line of the message"."""
    lines = str(error).strip().splitlines()
    return (f"{type(error).__name__}: {lines[0].strip()}" if lines else type(error).__name__)[:300]


def reason_from_nbgrader_result(result):
    """One line saying why nbgrader's API could not autograde a submission (or write its feedback), from the dict
    its NbGraderAPI.autograde returns: the innermost exception nbgrader logged (e.g. "RuntimeError: Inconsistent
    checksums for cell test_nll_grad"), else its last error line, rather than the closing "Please see the
    above traceback"; None when it succeeded."""
    if result.get("success"):
        return None
    lines = [line.strip() for line in (result.get("log") or "").splitlines() if line.strip()]
    generic = ("Please see the", "There was an error processing")
    errors = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b.*", line)
              and "NbGraderException" not in line]
    logged = [line.removeprefix("[ERROR]").strip() for line in lines
              if line.startswith("[ERROR]") and not any(g in line for g in generic)
              and "Traceback" not in line]
    tail = [line for line in (result.get("error") or "").splitlines() if line.strip()][-1:]
    tail = [line for line in tail if not any(g in line for g in generic)]
    for candidate in (errors[-1:], tail, logged[-1:]):
        if candidate:
            return candidate[0][:300]
    return "unknown error"


def record_problems(course, graded, problems):
    """Keep autograded/<PROBLEMS_FILE> ({student: one-line reason}) current for the students just graded."""
    path = Path(course) / "autograded" / PROBLEMS_FILE
    known = json.loads(path.read_text()) if path.exists() else {}
    for student in graded:
        known.pop(student, None)
    known.update(problems)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(known.items())), indent=1) + "\n")
    os.replace(tmp, path)  # a run killed mid-write leaves the old file, never half a file
