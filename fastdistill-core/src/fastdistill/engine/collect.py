"""Per-step statistics and the sinks that collect kept and rejected rows during a run."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastdistill.rows import REJECTION, ROW_ID, Rejection, Row, public_row
from fastdistill.storage import StorageBackend


@dataclass
class StepStats:
    """What one step did: rows in/out/rejected, batch latencies, queue wait, columns, ids."""

    name: str
    rows_in: int = 0
    rows_out: int = 0
    rejected: int = 0
    batches: int = 0
    batch_latencies: list[float] = field(default_factory=list)
    queue_wait_s: float = 0.0
    busy_s: float = 0.0
    started: float | None = None
    finished: float | None = None
    columns: set[str] = field(default_factory=set)
    min_sample_id: str | None = None
    max_sample_id: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def observe_output(self, rows: list[Row]) -> None:
        """Fold a batch of output rows into the manifest statistics."""
        with self.lock:
            self.rows_out += len(rows)
            for r in rows:
                if len(self.columns) < 512:
                    self.columns.update(k for k in r if not k.startswith("_"))
                sid = r.get("sample_id")
                if isinstance(sid, str):
                    if self.min_sample_id is None or sid < self.min_sample_id:
                        self.min_sample_id = sid
                    if self.max_sample_id is None or sid > self.max_sample_id:
                        self.max_sample_id = sid

    def mark_start(self) -> None:
        """Record the first moment the step had work."""
        if self.started is None:
            self.started = time.perf_counter()


def _row_sort_key(row: Row) -> tuple[str, int]:
    rid = str(row.get(ROW_ID, ""))
    gen, _, idx = rid.rpartition(":")
    return (gen, int(idx)) if idx.isdigit() else (rid, 0)


class RowSink:
    """Collects rows from several threads; writes them sorted by row id at the end."""

    def __init__(self, storage: StorageBackend, rel: str, *, keep_private: bool) -> None:
        self._storage = storage
        self.rel = rel
        self._keep_private = keep_private
        self._lock = threading.Lock()
        self._spool = storage.open(f".spool/{rel}.part", "w")
        self.count = 0

    def add(self, rows: list[Row]) -> None:
        """Append rows (spooled to disk, not held in memory)."""
        if not rows:
            return
        lines = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
        with self._lock:
            self._spool.write(lines)
            self.count += len(rows)

    def finalize(self) -> str:
        """Sort by row id and write the final file atomically; returns its full path."""
        with self._lock:
            self._spool.close()
            raw = self._storage.read_bytes(f".spool/{self.rel}.part").decode("utf-8")
            rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
            rows.sort(key=_row_sort_key)
            if not self._keep_private:
                rows = [public_row(r) for r in rows]
            path = self._storage.write_jsonl(self.rel, rows)
            self._storage.fs.rm(self._storage.path(f".spool/{self.rel}.part"))
            return path


class RejectedSink(RowSink):
    """The rejected set: each row with its ``_rejection`` (reason, step, detail)."""

    def __init__(self, storage: StorageBackend) -> None:
        super().__init__(storage, "rejected.jsonl", keep_private=True)
        self.reasons: dict[str, int] = {}
        self.by_step: dict[str, dict[str, int]] = {}
        self._seen: set[str] = set()

    def reject(self, items: list[tuple[Row, Rejection]]) -> list[tuple[Row, Rejection]]:
        """Record rejections (a row id already rejected is ignored); returns the new ones."""
        fresh: list[tuple[Row, Rejection]] = []
        with self._lock:
            for row, rej in items:
                rid = row.get(ROW_ID)
                if rid is not None:
                    if rid in self._seen:
                        continue
                    self._seen.add(rid)
                fresh.append((row, rej))
                self.reasons[rej.reason] = self.reasons.get(rej.reason, 0) + 1
                per = self.by_step.setdefault(rej.step, {})
                per[rej.reason] = per.get(rej.reason, 0) + 1
        self.add([{**_jsonable(row), REJECTION: rej.to_dict()} for row, rej in fresh])
        return fresh


def _jsonable(row: Row) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != REJECTION}
