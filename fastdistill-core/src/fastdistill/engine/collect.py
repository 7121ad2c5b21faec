"""Per-step statistics and the sinks that collect kept and rejected rows during a run."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter, methodcaller
from typing import IO, Any

import orjson

from fastdistill.engine.codec import dumps, dumps_strict, loads
from fastdistill.rows import REJECTION, ROW_ID, Rejection, Row
from fastdistill.storage import StorageBackend

_ROW_ID_OF = itemgetter(ROW_ID)
_RPARTITION = methodcaller("rpartition", ":")
_FIRST, _THIRD = itemgetter(0), itemgetter(2)

#: rows a sink sorts in memory before it writes them out as one sorted run
RUN_ROWS = 20_000
_KEY = itemgetter(0)


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
        if not rows:
            return
        n = len(rows)
        # columns from a sample of the batch (first, last and a few between): a batch's rows
        # share their columns, and every batch is sampled
        sample = rows if n <= 8 else [rows[i] for i in range(0, n, max(1, n // 8))] + [rows[-1]]
        cols = {k for r in sample for k in r if not k.startswith("_")}
        # every row's sample_id when the batch carries them (sampled rows tell), else none
        scan = rows if any("sample_id" in r for r in sample) else ()
        sids = [s for r in scan if isinstance(s := r.get("sample_id"), str)]
        with self.lock:
            self.rows_out += n
            if len(self.columns) < 512:
                self.columns.update(cols)
            if sids:
                lo, hi = min(sids), max(sids)
                if self.min_sample_id is None or lo < self.min_sample_id:
                    self.min_sample_id = lo
                if self.max_sample_id is None or hi > self.max_sample_id:
                    self.max_sample_id = hi

    def mark_start(self) -> None:
        """Record the first moment the step had work."""
        if self.started is None:
            self.started = time.perf_counter()


def _row_sort_key(row: Row) -> tuple[str, int]:
    rid = str(row.get(ROW_ID, ""))
    gen, _, idx = rid.rpartition(":")
    return (gen, int(idx)) if idx.isdigit() else (rid, 0)


def _compact(lines: list[bytes]) -> list[bytes]:
    # orjson hands back each document in a buffer of at least 4 KiB; joining and splitting
    # (JSON lines hold no raw newline) makes right-sized copies in two C passes
    return b"\n".join(lines).split(b"\n")


def _sort_keys(rows: list[Row]) -> list[tuple[str, int]]:
    """:func:`_row_sort_key` of every row (engine ids ``<step>:<n>`` in C loops)."""
    try:
        parts = list(map(_RPARTITION, map(_ROW_ID_OF, rows)))
        idxs = list(map(_THIRD, parts))
        if all(map(str.isdigit, idxs)):
            return list(zip(map(_FIRST, parts), map(int, idxs), strict=True))
    except (KeyError, TypeError, ValueError, AttributeError):  # an unusual id: row by row
        pass
    return [_row_sort_key(r) for r in rows]


def _public_lines(rows: list[Row]) -> list[bytes]:
    shape = rows[0].keys()
    names = [k for k in shape if not k.startswith("_")]
    if len(names) >= 2:
        # every row shaped like the first (the usual case): projected and encoded in C loops;
        # rows of the same length holding all of the first row's keys have its key set
        full = itemgetter(*names, *(k for k in shape if k.startswith("_")))
        try:
            if list(map(len, rows)).count(len(shape)) == len(rows):
                return _compact(list(map(dumps_strict, map(dict, map(
                    zip, repeat(names), map(full, rows))))))
        except (KeyError, TypeError, orjson.JSONEncodeError):
            pass  # another shape, or a value only the codec's fallback writes: row by row
    return _compact([dumps({k: v for k, v in r.items() if not k.startswith("_")})
                     for r in rows])


def _private_lines(rows: list[Row]) -> list[bytes]:
    return _compact([dumps(r) for r in rows])


class RowSink:
    """Collects rows from several threads; writes them sorted by row id at the end.

    Memory stays O(:data:`RUN_ROWS`): rows are encoded as they arrive, sorted in groups of
    ``RUN_ROWS`` and appended to the current sorted run on disk (a new run starts only when a
    group begins before the end of the current run, i.e. rows arrived out of order).  At the
    end one run is moved into place as is; several are merged line by line (``heapq.merge``).
    """

    def __init__(self, storage: StorageBackend, rel: str, *, keep_private: bool) -> None:
        self._storage = storage
        self.rel = rel
        self._keep_private = keep_private
        self._lock = threading.Lock()
        self._buf: list[tuple[tuple[str, int], bytes]] = []
        self._runs: list[tuple[str, str]] = []  # (data, keys) spool paths, in creation order
        self._fh: tuple[IO[Any], IO[Any]] | None = None
        self._last: tuple[str, int] | None = None
        self.count = 0

    def add(self, rows: list[Row]) -> None:
        """Append rows (encoded now; held in memory up to ``RUN_ROWS`` rows)."""
        if not rows:
            return
        keys = _sort_keys(rows)
        lines = _private_lines(rows) if self._keep_private else _public_lines(rows)
        with self._lock:
            self._buf.extend(zip(keys, lines, strict=True))
            self.count += len(rows)
            if len(self._buf) >= RUN_ROWS:
                self._spill()

    def _spill(self) -> None:
        """Sort the buffer and append it to the current run (call with the lock held)."""
        buf = self._buf
        if not buf:
            return
        buf.sort(key=_KEY)  # stable: equal ids keep their arrival order
        if self._fh is None or (self._last is not None and buf[0][0] < self._last):
            self._close_run()
            n = len(self._runs)
            data, keys = f".spool/{self.rel}.run{n}", f".spool/{self.rel}.keys{n}"
            self._runs.append((data, keys))
            self._fh = (self._storage.open(data, "wb"), self._storage.open(keys, "wb"))
        data_fh, keys_fh = self._fh
        data_fh.write(b"\n".join([line for _, line in buf]) + b"\n")
        keys_fh.write(dumps([key for key, _ in buf]) + b"\n")  # one array per group
        self._last = buf[-1][0]
        self._buf = []

    def _close_run(self) -> None:
        if self._fh is not None:
            for fh in self._fh:
                fh.close()
            self._fh = None

    def finalize(self) -> str:
        """Write the final file, sorted by row id, atomically; returns its full path."""
        storage = self._storage
        with self._lock:
            self._spill()
            self._close_run()
            if not self._runs:
                return storage.write_bytes(self.rel, b"")
            if len(self._runs) == 1:
                target = storage.move(self._runs[0][0], self.rel)
            else:
                with storage.open_atomic(self.rel) as out:
                    handles = [(storage.open(d, "rb"), storage.open(k, "rb"))
                               for d, k in self._runs]
                    try:
                        merged = heapq.merge(*(_run_lines(d, k) for d, k in handles), key=_KEY)
                        for _, line in merged:
                            out.write(line if line.endswith(b"\n") else line + b"\n")
                    finally:
                        for d, k in handles:
                            d.close()
                            k.close()
                target = storage.path(self.rel)
            for data, keys in self._runs:
                for rel in (data, keys):
                    if storage.exists(rel):
                        storage.rm(rel)
            self._runs = []
            return target


def _run_lines(data: IO[Any], keys: IO[Any]) -> Iterator[tuple[tuple[str, int], bytes]]:
    for group in keys:
        for gen, idx in loads(group):
            yield (gen, idx), next(data)


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
