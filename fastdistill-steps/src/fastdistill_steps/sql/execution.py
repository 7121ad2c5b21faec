"""Running SQL read-only with a hard time limit, and comparing results."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# sqlite3 authorizer action codes a read-only query needs (values from sqlite3.h)
_ALLOWED_ACTIONS = frozenset({
    20,  # SQLITE_READ
    21,  # SQLITE_SELECT
    31,  # SQLITE_FUNCTION
    33,  # SQLITE_RECURSIVE
})
_SQLITE_OK, _SQLITE_DENY = 0, 1


def _authorize(action: int, *args: Any) -> int:
    return _SQLITE_OK if action in _ALLOWED_ACTIONS else _SQLITE_DENY


def guard(conn: sqlite3.Connection) -> None:
    """Allow only reading statements on ``conn`` (on top of ``mode=ro`` and ``query_only``)."""
    conn.set_authorizer(_authorize)


@dataclass(frozen=True)
class QueryResult:
    """Outcome of one query: ``status`` is ``ok``, ``error`` or ``timeout``."""

    status: str
    rows: list[tuple[Any, ...]] | None = None
    error: str | None = None


def run_query(
    conn: sqlite3.Connection,
    sql: str,
    *,
    timeout_s: float,
    max_rows: int,
    cancel: threading.Event | None = None,
) -> QueryResult:
    """Run ``sql`` and fetch at most ``max_rows`` rows, aborting after ``timeout_s`` seconds.

    The limit is enforced by a progress handler that SQLite calls every few hundred virtual
    machine instructions (so an endless recursive query stops), with ``conn.interrupt()`` from a
    watchdog timer as a backstop.
    """
    deadline = time.monotonic() + timeout_s
    expired = threading.Event()

    def progress() -> int:
        if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
            expired.set()
            return 1
        return 0

    def watchdog() -> None:
        expired.set()
        conn.interrupt()

    timer = threading.Timer(timeout_s + 0.5, watchdog)
    timer.daemon = True
    conn.set_progress_handler(progress, 200)
    timer.start()
    try:
        cursor = conn.execute(sql)
        try:
            rows = cursor.fetchmany(max_rows + 1)
        finally:
            cursor.close()
    except (sqlite3.Error, sqlite3.Warning, ValueError, OverflowError, MemoryError) as exc:
        if expired.is_set():
            return QueryResult("timeout", error=f"no result within {timeout_s:g}s")
        return QueryResult("error", error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        timer.cancel()
        conn.set_progress_handler(None, 0)
    if len(rows) > max_rows:
        return QueryResult("error", error=f"result has more than max_rows={max_rows} rows")
    return QueryResult("ok", rows=[tuple(r) for r in rows])


def _norm_value(value: Any) -> Any:
    if isinstance(value, float):
        value = round(value, 6)
        return 0.0 if value == 0 else value
    return value


def normalize(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows with floats rounded to 6 decimals (so ``1`` and ``1.0`` compare equal)."""
    return [tuple(_norm_value(v) for v in row) for row in rows]


def same_result(pred: Sequence[tuple[Any, ...]], gold: Sequence[tuple[Any, ...]], *, ordered: bool) -> bool:
    """Equal as lists when ``ordered``, else as multisets of rows (normalised)."""
    p, g = normalize(pred), normalize(gold)
    if ordered:
        return p == g
    return len(p) == len(g) and Counter(p) == Counter(g)
