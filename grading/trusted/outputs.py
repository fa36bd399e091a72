"""Outputs from the untrusted kernel: structural validation, sizes, and the per-cell / per-notebook budget.

Everything the kernel sends is untrusted. libzmq already drops any single message above
``SandboxedKernelManager.max_message_mb`` and the grader's receive queues are bounded; on top of that every kept
output is validated (:func:`valid_output`), counted (:func:`output_size`) and admitted against a budget per cell and
per notebook (:class:`OutputBudget`): beyond it the output is cut and one line says so, so a cell printing 100 MB
costs the grader a few MB at most. :class:`BudgetedOutputs` puts this into nbclient's output hooks; malformed
messages are dropped and widgets/comms are ignored.
"""
from __future__ import annotations

import json
import typing as t

from nbclient.exceptions import CellExecutionComplete
from nbformat import NotebookNode
from nbformat.v4 import new_output, output_from_msg

MAX_EVALUE = 10000            # characters of an error message kept
MAX_TRACEBACK_LINES = 200
MAX_TRACEBACK_LINE = 2000
MAX_DISPLAY_UPDATE = 65536    # characters of an output that updates a display by id
DISPLAY_KINDS = ("execute_result", "display_data", "update_display_data")
LOST_OUTPUT = ("\n[grader: some output of this cell was lost (a single message over the size limit, or the kernel "
               "stopped sending)]\n")


def error_output(ename: str, evalue: str) -> NotebookNode:
    """An error output whose one-line traceback is ``"Type: message"``: no source code reaches the feedback."""
    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def stream_output(name: str, text: str) -> NotebookNode:
    return new_output("stream", name=name, text=text)


def output_size(out: t.Mapping) -> int:
    """Characters an output holds (its text, data and metadata)."""
    kind = out.get("output_type")
    if kind == "stream":
        return len(out.get("text", ""))
    if kind == "error":
        return len(out.get("evalue", "")) + sum(len(x) for x in out.get("traceback", []))
    total = 0
    for value in (out.get("data") or {}).values():
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, list):
            total += sum(len(x) if isinstance(x, str) else 64 for x in value)
        else:
            total += len(json.dumps(value, default=str))
    return total + len(json.dumps(out.get("metadata") or {}, default=str))


def json_plain(value: t.Any, depth: int = 0) -> bool:
    """Only JSON's own types (exactly), nested at most 32 deep."""
    if depth > 32:
        return False
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) in (list, tuple):
        return all(json_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(type(k) is str and json_plain(v, depth + 1) for k, v in value.items())
    return False


def _valid_data(out: t.Mapping) -> bool:
    data, meta = out.get("data"), out.get("metadata", {})
    if not isinstance(data, dict) or not isinstance(meta, dict) or not json_plain(meta):
        return False
    for key, value in data.items():
        if not isinstance(key, str) or len(key) > 200:
            return False
        if key.endswith("json"):
            if not json_plain(value):
                return False
        elif not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(x, str) for x in value))):
            return False
    return True


def valid_output(out: t.Mapping) -> bool:
    """Structural check of an output built from an (untrusted) kernel message."""
    kind = out.get("output_type")
    if kind == "stream":
        return out.get("name") in ("stdout", "stderr") and isinstance(out.get("text"), str)
    if kind == "error":
        tb = out.get("traceback")
        return (isinstance(out.get("ename"), str) and isinstance(out.get("evalue"), str) and isinstance(tb, list)
                and all(isinstance(x, str) for x in tb))
    if kind == "display_data":
        return _valid_data(out)
    if kind == "execute_result":
        return _valid_data(out) and (out.get("execution_count") is None or type(out.get("execution_count")) is int)
    return False


def language_info(kernel_info_reply: t.Any) -> dict:
    """The notebook's language_info from the kernel's (untrusted) kernel_info reply, if it is plain and small."""
    content = kernel_info_reply.get("content") if isinstance(kernel_info_reply, dict) else None
    lang = content.get("language_info") if isinstance(content, dict) else None
    ok = isinstance(lang, dict) and json_plain(lang) and len(json.dumps(lang)) < 10000
    return lang if ok else {"name": "python"}


def clean_reply(content: t.Any) -> dict | None:
    """The fields of an execute_reply that nbgrader reads, well-formed and capped (the reply is untrusted)."""
    if not isinstance(content, dict):
        return None
    tb = content.get("traceback")
    return {
        "status": content.get("status"),
        "ename": content.get("ename") if isinstance(content.get("ename"), str) else "Error",
        "evalue": content.get("evalue")[:MAX_EVALUE] if isinstance(content.get("evalue"), str) else "",
        "traceback": ([x[:MAX_TRACEBACK_LINE] for x in tb[:MAX_TRACEBACK_LINES] if isinstance(x, str)]
                      if isinstance(tb, list) else []),
    }


class OutputBudget:
    """Characters of output kept per cell and per notebook; beyond them output is cut and one line says so."""

    def __init__(self, per_cell: int, per_notebook: int):
        self.per_cell, self.per_notebook = per_cell, per_notebook
        self.notebook_used = 0
        self.start_cell()

    def start_cell(self) -> None:
        self.cell_used = 0
        self.truncated_at: str | None = None     # which cap cut this cell's output, once one did

    def cleared(self) -> None:
        """The cell's outputs were cleared (clear_output): they no longer count."""
        self.cell_used = 0

    def end_cell(self, outputs: t.Iterable[t.Mapping]) -> None:
        self.notebook_used += sum(output_size(o) for o in outputs)

    def admit(self, out: NotebookNode, outs: list) -> NotebookNode | None:
        """`out` (possibly cut) if it is to be appended to `outs`; None if not (the truncation note then is)."""
        if out.output_type == "error":     # errors: always kept, individually capped
            out.evalue = out.evalue[:MAX_EVALUE]
            out.traceback = [line[:MAX_TRACEBACK_LINE] for line in out.traceback[:MAX_TRACEBACK_LINES]]
            return out
        if self.truncated_at is not None:
            return None
        cell_room = self.per_cell - self.cell_used
        nb_room = self.per_notebook - self.notebook_used - self.cell_used
        room = min(cell_room, nb_room)
        size = output_size(out)
        if size <= room:
            self.cell_used += size
            return out
        self.truncated_at = (f"{self.per_cell} bytes for this cell" if cell_room <= nb_room
                             else f"{self.per_notebook} bytes for the notebook")
        note = f"\n[output truncated: more than {self.truncated_at}]\n"
        if out.output_type == "stream" and room > 0:
            out.text = out.text[:room] + note
            self.cell_used += room
            return out
        outs.append(stream_output("stdout", note))
        return None


class BudgetedOutputs:
    """nbclient output hooks (mixed into a NotebookClient) that keep only valid outputs within ``self.budget``
    and note whether the kernel's idle status arrived (``self.idle_seen``): if not, some output went missing."""

    budget: OutputBudget
    idle_seen: bool

    def process_message(self, msg: dict, cell: NotebookNode, cell_index: int):
        try:
            kind, content = msg.get("msg_type"), msg.get("content", {})
            if kind == "status" and content.get("execution_state") == "idle":
                self.idle_seen = True
            transient = content.get("transient")
            if (transient and transient.get("display_id") and kind in DISPLAY_KINDS
                    and not self._valid_update(msg)):
                if kind == "update_display_data":
                    return None
                # kept as an ordinary output (if valid), but it updates no other display
                msg = dict(msg, content={k: v for k, v in content.items() if k != "transient"})
            return super().process_message(msg, cell, cell_index)
        except CellExecutionComplete:
            raise
        except Exception as e:
            self.log.debug("TrustedExecute: dropped malformed kernel message: %s", e)
            return None

    @staticmethod
    def _valid_update(msg: dict) -> bool:
        try:
            probe = output_from_msg(dict(msg, msg_type="display_data",
                                         header=dict(msg["header"], msg_type="display_data")))
        except Exception:
            return False
        return valid_output(probe) and output_size(probe) <= MAX_DISPLAY_UPDATE

    def handle_comm_msg(self, outs, msg, cell_index) -> None:
        return None

    def clear_output(self, outs, msg, cell_index) -> None:
        super().clear_output(outs, msg, cell_index)
        if not outs:
            self.budget.cleared()

    def output(self, outs, msg, display_id, cell_index):
        try:
            out = output_from_msg(msg)
        except Exception:
            return None
        if not valid_output(out):
            return None
        if self.clear_before_next_output:
            outs[:] = []
            self.budget.cleared()
            self.clear_display_id_mapping(cell_index)
            self.clear_before_next_output = False
        out = self.budget.admit(out, outs)
        if out is None:
            return None
        if display_id:
            self._display_id_map.setdefault(display_id, {}).setdefault(cell_index, []).append(len(outs))
        outs.append(out)
        return out

    def on_cell_executed(self, **kwargs: t.Any) -> None:
        """nbgrader's hook (adds an error output when the reply reports one the outputs lack), fed only with
        well-formed reply fields: the reply comes from the untrusted kernel."""
        reply = kwargs.get("execute_reply") or {}
        clean = clean_reply(reply.get("content") if isinstance(reply, dict) else None)
        if clean is not None:
            super().on_cell_executed(**dict(kwargs, execute_reply={"content": clean}))
