"""Showing results: coloured HTML in Jupyter, plain text elsewhere. The words come from gradcheck_text.py."""
import html
import os
import sys

import numpy as np

import gradcheck_text as text


def _colour(passed):
    return "#1b7f2a" if passed else "#c62828"


def _in_jupyter():
    """Inside a Jupyter kernel, where display() reaches the notebook (IPython is never imported here)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None
    return getattr(shell, "kernel", None) is not None


def _display(text, html_text):
    """HTML with a text/plain fallback in Jupyter; the text on stdout elsewhere."""
    if _in_jupyter():
        from IPython.display import display
        display({"text/plain": text, "text/html": html_text}, raw=True)
    else:
        print(text)


def show_line(line, passed, hint=None):
    """Show one self-check line (and an optional hint line under it).

    While autograding it goes to stdout: the points come from grade(), and nbgrader zeroes a test cell that
    wrote to stderr. Under `nbgrader validate` or outside Jupyter a failure goes to stderr, so validate lists
    the cell as failing. In JupyterLab: green or red HTML (class gradcheck-pass / gradcheck-fail), with the
    same text as text/plain.
    """
    mode = os.environ.get("NBGRADER_EXECUTION")
    if mode == "autograde":
        print(line)
        return
    text = line if hint is None else f"{line}\n  {hint}"
    if mode is None and _in_jupyter():
        more = "" if hint is None else f'<br><span style="color:#555">&nbsp;&nbsp;{html.escape(hint)}</span>'
        _display(text, f'<div class="gradcheck-{"pass" if passed else "fail"}" style="color:{_colour(passed)}; '
                       f'font-family:monospace; white-space:pre-wrap">{html.escape(line)}{more}</div>')
    else:
        print(text, file=sys.stdout if passed else sys.stderr)


def show_table(rows):
    """Show check_all's table: rows of (passed, item, points earned, points possible, diagnosis), then the
    line "Public checks: X/Y points". HTML <table class="gradcheck-summary"> with a text/plain fallback."""
    header, lines, footer = text.summary(rows)
    left = 'style="text-align:left"'   # JupyterLab right-aligns table cells
    cells = "".join(
        f'<tr><td style="color:{_colour(ok)}">{html.escape(text.mark(ok))}</td><td {left}>'
        f'<code>{html.escape(item)}</code></td><td>{html.escape(text.say("points", earned=got, possible=pts))}'
        f'</td><td {left}>{html.escape(why)}</td></tr>'
        for ok, item, got, pts, why in rows)
    table = (f'<table class="gradcheck-summary"><caption {left}>{html.escape(header)}</caption>{cells}'
             f'<tr><td colspan="4"><b>{html.escape(footer)}</b></td></tr></table>')
    _display("\n".join([header, *lines, footer]), table)


def training_problem(losses):
    """What looks wrong with a training run's losses (one per epoch, in order), or None: nan/inf, a loss
    above the first one (a correct run here dips back up once, by 0.06, but never above its start), or a
    last loss above 0.9 x the first (a correct run ends at 0.04 x)."""
    values = [float(v) for v in losses if isinstance(v, (int, float, np.number))]
    if not values:
        return None
    bad = next((k for k, v in enumerate(values) if not np.isfinite(v)), None)
    if bad is not None:
        return f"became {values[bad]} at epoch {bad}"
    top = int(np.argmax(values))
    if values[top] > values[0]:
        return f"went up, from {values[0]:.4f} at epoch 0 to {values[top]:.4g} at epoch {top}"
    if len(values) > 1 and values[-1] > 0.9 * values[0]:
        return f"hardly went down: {values[0]:.4f} at epoch 0, {values[-1]:.4f} at epoch {len(values) - 1}"
    return None
