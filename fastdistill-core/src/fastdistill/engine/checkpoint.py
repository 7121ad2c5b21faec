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


@dataclass
class Replay:
    """What a step did in earlier attempts: the outcome of every row id it processed."""

    kept: dict[str, list[Row]] = field(default_factory=dict)
    rejected: dict[str, tuple[Row, Rejection]] = field(default_factory=dict)
    done: dict[str, Any] | None = None

    def has(self, rid: str) -> bool:
        """Whether row ``rid`` was processed before."""
        return rid in self.kept or rid in self.rejected

    def __len__(self) -> int:
        return len(self.kept) + len(self.rejected)


class StepCheckpoint:
    """Append-only batch log of one step under ``.fastdistill/steps/<signature>/``."""

    def __init__(self, storage: StorageBackend, signature: str, step: str) -> None:
        self.storage = storage
        self.rel = f"{STATE_DIR}/steps/{signature}"
        self.step = step
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
                if "k" in rec:
                    row = rec["k"]
                    replay.kept.setdefault(str(rec.get("src", row.get(ROW_ID))), []).append(row)
                elif "r" in rec:
                    row = rec["r"]
                    rej = Rejection(**rec["why"])
                    replay.rejected[str(row.get(ROW_ID))] = (row, rej)
        if self.storage.exists(f"{self.rel}/done.json"):
            replay.done = self.storage.read_json(f"{self.rel}/done.json")
        self._seq = len(names)
        return replay

    def record(
        self, kept: list[Row], rejected: list[tuple[Row, Rejection]], sources: list[str] | None = None
    ) -> None:
        """Save one processed batch atomically.  ``sources`` maps kept rows to input ids."""
        if not kept and not rejected:
            return
        lines = []
        for i, row in enumerate(kept):
            rec: dict[str, Any] = {"k": row}
            if sources is not None and sources[i] != row.get(ROW_ID):
                rec["src"] = sources[i]
            lines.append(json.dumps(rec, ensure_ascii=False, default=str))
        for row, rej in rejected:
            lines.append(json.dumps({"r": row, "why": rej.to_dict()}, ensure_ascii=False, default=str))
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
