"""Step checkpoints: what each step did to each row, saved batch by batch, for exact resume.

Layout inside a run's output (through the :class:`~fastdistill.storage.StorageBackend`)::

    .fastdistill/state.json                 pipeline signature, status, last run id
    .fastdistill/steps/<signature>/*.jsonl  one file per group commit (atomic, never rewritten)
    .fastdistill/steps/<signature>/done.json  the step saw all of its input

A step records each processed batch into a buffer (encoded at once, so later in-place changes by
downstream steps cannot leak in) and commits the buffer as one atomically written file when it
holds ``max_rows`` rows or ``max_bytes`` bytes, when ``window_s`` passed since the last commit,
and always at the end of the step or on cancel.  A run killed between two commits recomputes
the uncommitted rows (an LLM task's completed requests are answered by the response cache).
Each line of a file is one record or a JSON array of records (one batch): the rows the step
kept and the rows it rejected with their reasons, as deltas against the input row.  Writing a
checkpoint costs O(new data), never O(everything so far).  A step's
folder is named by its signature (component, version, parameters, upstream signatures), so a
changed step, and every step after it, starts from scratch while the steps before it replay.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from fastdistill.engine.codec import dumps, loads
from fastdistill.engine.snapshot import Snapshot
from fastdistill.rows import ROW_ID, Rejection, Row
from fastdistill.storage import StorageBackend

_ROW_ID_OF = itemgetter(ROW_ID)

STATE_DIR = ".fastdistill"

#: reject reasons of a passing outage: such rows are not replayed but tried again on resume
TRANSIENT_REASONS = frozenset({"provider_error", "timeout"})
_MISSING = object()


Entry = tuple[dict[str, Any], list[str], bool]  # (columns, dropped columns, full row?)


def _delta(row: Row, source: Row | None, keep: tuple[str, ...]) -> dict[str, Any]:
    """A kept/rejected row as stored: only what differs from its input row (O(new data))."""
    if source is None:
        return {"row": row}
    get = source.get
    changed = {
        k: v for k, v in row.items()
        if k in keep or ((s := get(k, _MISSING)) is not v and (s is _MISSING or s != v))
    }
    changed[ROW_ID] = row.get(ROW_ID)
    dropped = [k for k in source if k not in row]
    return {"delta": changed, "drop": dropped} if dropped else {"delta": changed}


def _kept_records(
    kept: list[Row], src: dict[Any, Row] | Snapshot, keep: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Records of the kept rows: one columnar record for the rows shaped like the first one
    (same columns in and out, the same columns changed), per-row deltas for the others."""
    if isinstance(src, Snapshot):
        columnar = src.columnar(kept, keep)
        if columnar is not None:  # the usual case: the step added columns to its input rows
            return [columnar]
    first = kept[0] if len(kept) >= 8 else None
    s0 = src.get(first.get(ROW_ID)) if first is not None else None
    if first is None or s0 is None:
        return [_delta(row, src.get(row.get(ROW_ID)), keep) for row in kept]
    changed = [
        k for k, v in first.items()
        if k != ROW_ID
        and (k in keep or (s := s0.get(k, _MISSING)) is _MISSING or s is not v and s != v)
    ]
    same = [k for k in first if k != ROW_ID and k not in changed]
    dropped = [k for k in s0 if k not in first]
    out_keys, in_keys = first.keys(), s0.keys()
    getter = itemgetter(*same) if same else None
    try:  # the usual case, checked in C loops: every row shaped like the first one
        ids = list(map(_ROW_ID_OF, kept))
        srcs = list(map(src.__getitem__, ids))
        uniform = (
            all(map(out_keys.__eq__, map(dict.keys, kept)))
            and all(map(in_keys.__eq__, map(dict.keys, srcs)))
            and (getter is None or list(map(getter, kept)) == list(map(getter, srcs)))
        )
    except (KeyError, TypeError):  # a row without an id or a source, or not a dict
        uniform = False
    if uniform:
        rec: dict[str, Any] = {
            "ids": ids, "cols": {k: list(map(itemgetter(k), kept)) for k in changed},
        }
        if dropped:
            rec["drop"] = dropped
        return [rec]
    ok: list[Row] = []
    rest: list[dict[str, Any]] = []
    for row in kept:
        s = src.get(row.get(ROW_ID))
        if (
            s is not None
            and row.keys() == out_keys
            and s.keys() == in_keys
            and (getter is None or getter(row) == getter(s))
        ):
            ok.append(row)
        else:
            rest.append(_delta(row, s, keep))
    rec = {
        "ids": [r[ROW_ID] for r in ok],
        "cols": {k: [r[k] for r in ok] for k in changed},
    }
    if dropped:
        rec["drop"] = dropped
    return [rec, *rest] if ok else rest


def _expand(rec: dict[str, Any]) -> list[tuple[str, Entry]]:
    """The per-row entries of a columnar record."""
    names = list(rec["cols"])
    columns = [rec["cols"][k] for k in names]
    drop = list(rec.get("drop", []))
    out = []
    for i, rid in enumerate(rec["ids"]):
        cols = {k: col[i] for k, col in zip(names, columns, strict=True)}
        cols[ROW_ID] = rid
        out.append((str(rid), (cols, drop, False)))
    return out


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
        self,
        storage: StorageBackend,
        signature: str,
        step: str,
        state_columns: tuple[str, ...] = (),
        *,
        window_s: float = 0.5,
        max_rows: int = 20_000,
        max_bytes: int = 4 << 20,
    ) -> None:
        self.storage = storage
        self.rel = f"{STATE_DIR}/steps/{signature}"
        self.step = step
        self.state_columns = tuple(state_columns)
        self._lock = threading.Lock()
        self._seq = 0
        self.window_s = window_s
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._buf: list[bytes] = []
        self._buf_rows = 0
        self._buf_bytes = 0
        self._last_commit = time.monotonic()
        self.commits = 0

    def load(self) -> Replay:
        """Read every batch file written by earlier attempts (unfinished temp files ignored)."""
        replay = Replay()
        names = [n for n in self.storage.listdir(self.rel) if n.endswith(".jsonl")]
        for name in sorted(names):
            raw = self.storage.read_bytes(f"{self.rel}/{name}")
            for line in raw.splitlines():
                if not line.strip():
                    continue
                doc = loads(line)
                for rec in doc if isinstance(doc, list) else (doc,):
                    if "ids" in rec:
                        for rid, entry in _expand(rec):
                            replay.kept.setdefault(rid, []).append(entry)
                        continue
                    entry = _entry(rec)
                    rid = str(rec.get("src") or entry[0].get(ROW_ID))
                    if "why" in rec:
                        rejection = Rejection(**rec["why"])
                        if rejection.reason in TRANSIENT_REASONS:
                            continue  # a provider outage is retried by the next attempt
                        replay.rejected[rid] = (entry, rejection)
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
        sources: Snapshot | dict[str, Row] | None = None,
    ) -> None:
        """Buffer one processed batch (committed by :meth:`maybe_commit` / :meth:`commit`).

        With ``sources`` (input rows by id, as they were before the step ran), only the columns
        a step changed are stored: a checkpoint costs O(new data)."""
        if not kept and not rejected:
            return
        src: Snapshot | dict[Any, Row] = sources if sources is not None else {}
        keep = self.state_columns
        recs = _kept_records(kept, src, keep) if kept else []
        for row, rej in rejected:
            rec = _delta(row, src.get(row.get(ROW_ID)), keep)
            rec["why"] = rej.to_dict()
            recs.append(rec)
        line = dumps(recs) + b"\n"
        with self._lock:
            self._buf.append(line)
            self._buf_rows += len(kept) + len(rejected)
            self._buf_bytes += len(line)

    def due(self) -> bool:
        """Whether the buffer should be committed now (size or age)."""
        return bool(self._buf) and (
            self._buf_rows >= self.max_rows
            or self._buf_bytes >= self.max_bytes
            or time.monotonic() - self._last_commit >= self.window_s
        )

    def maybe_commit(self) -> None:
        """Commit the buffer if it is due."""
        if self.due():
            self.commit()

    def commit(self) -> None:
        """Write the buffered batches as one new file, atomically."""
        with self._lock:
            self._last_commit = time.monotonic()
            if not self._buf:
                return
            data = b"".join(self._buf)
            self._buf, self._buf_rows, self._buf_bytes = [], 0, 0
            self._seq += 1
            seq = self._seq
        name = f"{seq:09d}-{uuid.uuid4().hex[:8]}.jsonl"
        self.storage.write_bytes(f"{self.rel}/{name}", data)
        self.commits += 1

    def clear(self) -> None:
        """Forget this step's batches (its earlier attempt is being redone from scratch)."""
        if self.storage.exists(self.rel):
            self.storage.rm(self.rel, recursive=True)
        with self._lock:
            self._buf, self._buf_rows, self._buf_bytes = [], 0, 0
        self._seq = 0

    def mark_done(self, info: dict[str, Any]) -> None:
        """The step consumed all of its input in this attempt (the buffer is committed first)."""
        self.commit()
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
    if storage.exists(STATE_DIR):
        storage.rm(STATE_DIR, recursive=True)
