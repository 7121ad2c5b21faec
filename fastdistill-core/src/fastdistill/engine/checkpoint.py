"""Step checkpoints: what each step did to each row, saved batch by batch, for exact resume.

Layout inside a run's output (through the :class:`~fastdistill.storage.StorageBackend`)::

    .fastdistill/state.json                 pipeline signature, status, last run id
    .fastdistill/steps/<signature>/*.jsonl  one file per processed batch (atomic, never rewritten)
    .fastdistill/steps/<signature>/done.json  the step saw all of its input

Each batch file holds the ids of the input rows, the rows the step kept and the rows it rejected
with their reasons.  Writing a checkpoint costs O(batch), never O(everything so far).  A step's
folder is named by its signature (component, version, parameters, upstream signatures), so a
changed step, and every step after it, starts from scratch while the steps before it replay.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastdistill.rows import ROW_ID, Rejection, Row
from fastdistill.storage import StorageBackend

STATE_DIR = ".fastdistill"


Entry = tuple[dict[str, Any], list[str], bool]  # (columns, dropped columns, full row?)


def _delta(row: Row, source: Row | None, keep: tuple[str, ...]) -> dict[str, Any]:
    """A kept/rejected row as stored: only what differs from its input row (O(new data))."""
    if source is None:
        return {"row": row}
    changed = {k: v for k, v in row.items() if k in keep or k not in source or source[k] != v}
    changed[ROW_ID] = row.get(ROW_ID)
    dropped = [k for k in source if k not in row]
    return {"delta": changed, "drop": dropped} if dropped else {"delta": changed}


def _entry(rec: dict[str, Any]) -> Entry:
    if "row" in rec:
        return rec["row"], [], True
    return rec["delta"], list(rec.get("drop", [])), False


def _rebuild(entry: Entry, source: Row) -> Row:
    cols, dropped, full = entry
    if full:
        return dict(cols)
    out = {k: v for k, v in source.items() if k not in dropped}
    out.update(cols)
    return out


@dataclass
class Replay:
    """What a step did in earlier attempts: the outcome of every row id it processed."""

    kept: dict[str, list[Entry]] = field(default_factory=dict)
    rejected: dict[str, tuple[Entry, Rejection]] = field(default_factory=dict)
    done: dict[str, Any] | None = None

    def has(self, rid: str) -> bool:
        """Whether row ``rid`` was processed before."""
        return rid in self.kept or rid in self.rejected

    def __len__(self) -> int:
        return len(self.kept) + len(self.rejected)

    def outcome(self, rid: str, source: Row) -> tuple[list[Row], tuple[Row, Rejection] | None]:
        """The rows kept for input ``source`` and its rejection, rebuilt from the records."""
        kept = [_rebuild(e, source) for e in self.kept.get(rid, [])]
        rej = self.rejected.get(rid)
        return kept, (None if rej is None else (_rebuild(rej[0], source), rej[1]))

    def generated(self, rid: str) -> tuple[list[Row], tuple[Row, Rejection] | None]:
        """Rows of a generator (stored whole)."""
        return self.outcome(rid, {})

    def state_rows(self) -> list[Row]:
        """Kept rows as stored (changed and state columns), for ``Step.restore_state``."""
        return [dict(e[0]) for entries in self.kept.values() for e in entries]


class StepCheckpoint:
    """Append-only batch log of one step under ``.fastdistill/steps/<signature>/``."""

    def __init__(
        self, storage: StorageBackend, signature: str, step: str, state_columns: tuple[str, ...] = ()
    ) -> None:
        self.storage = storage
        self.rel = f"{STATE_DIR}/steps/{signature}"
        self.step = step
        self.state_columns = tuple(state_columns)
        self._lock = threading.Lock()
        self._seq = 0

    def load(self) -> Replay:
        """Read every batch file written by earlier attempts (unfinished temp files ignored)."""
        replay = Replay()
        names = [n for n in self.storage.listdir(self.rel) if n.endswith(".jsonl")]
        for name in sorted(names):
            raw = self.storage.read_bytes(f"{self.rel}/{name}").decode("utf-8")
            for line in raw.splitlines():
                if not line.strip():
                    continue
                rec = json.loads(line)
                entry = _entry(rec)
                rid = str(rec.get("src") or entry[0].get(ROW_ID))
                if "why" in rec:
                    replay.rejected[rid] = (entry, Rejection(**rec["why"]))
                else:
                    replay.kept.setdefault(rid, []).append(entry)
        if self.storage.exists(f"{self.rel}/done.json"):
            replay.done = self.storage.read_json(f"{self.rel}/done.json")
        self._seq = len(names)
        return replay

    def record(
        self,
        kept: list[Row],
        rejected: list[tuple[Row, Rejection]],
        sources: dict[str, Row] | None = None,
    ) -> None:
        """Save one processed batch atomically.  With ``sources`` (input rows by id), only the
        columns a step changed are stored: a checkpoint costs O(new data)."""
        if not kept and not rejected:
            return
        src = sources or {}
        lines = []
        for row in kept:
            rec = _delta(row, src.get(row.get(ROW_ID)), self.state_columns)
            lines.append(json.dumps(rec, ensure_ascii=False, default=str))
        for row, rej in rejected:
            rec = {**_delta(row, src.get(row.get(ROW_ID)), self.state_columns), "why": rej.to_dict()}
            lines.append(json.dumps(rec, ensure_ascii=False, default=str))
        with self._lock:
            self._seq += 1
            seq = self._seq
        name = f"{seq:09d}-{uuid.uuid4().hex[:8]}.jsonl"
        self.storage.write_text(f"{self.rel}/{name}", "\n".join(lines) + "\n")

    def clear(self) -> None:
        """Forget this step's batches (its earlier attempt is being redone from scratch)."""
        path = self.storage.path(self.rel)
        if self.storage.fs.exists(path):
            self.storage.fs.rm(path, recursive=True)
        self._seq = 0

    def mark_done(self, info: dict[str, Any]) -> None:
        """The step consumed all of its input in this attempt."""
        self.storage.write_json(f"{self.rel}/done.json", info)


def read_state(storage: StorageBackend) -> dict[str, Any] | None:
    """The run state of an output folder, if one was written."""
    rel = f"{STATE_DIR}/state.json"
    if not storage.exists(rel):
        return None
    try:
        state: dict[str, Any] = storage.read_json(rel)
    except (ValueError, OSError):
        return None
    return state


def write_state(storage: StorageBackend, state: dict[str, Any]) -> None:
    """Atomically replace the run state."""
    storage.write_json(f"{STATE_DIR}/state.json", state)


def clear_checkpoints(storage: StorageBackend) -> None:
    """Forget every checkpoint and the run state (``--fresh``)."""
    path = storage.path(STATE_DIR)
    if storage.fs.exists(path):
        storage.fs.rm(path, recursive=True)
