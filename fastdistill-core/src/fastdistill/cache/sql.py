"""The response cache's SQLite statements: opening a connection (WAL, schema checked) and
storing a group of entries in one transaction.  ``sqlite3`` is imported on first use."""

from __future__ import annotations

import contextlib
import functools
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS responses ("
    "key TEXT PRIMARY KEY, created REAL NOT NULL, model TEXT, generation TEXT NOT NULL)"
)

#: entries stored by one INSERT statement (4 values each; SQLite allows 999 at least)
INSERT_ROWS = 200


@functools.lru_cache(maxsize=8)
def insert_sql(n: int) -> str:
    """``INSERT OR REPLACE`` of ``n`` entries in one statement."""
    values = ",".join(["(?,?,?,?)"] * n)
    return f"INSERT OR REPLACE INTO responses (key, created, model, generation) VALUES {values}"


def is_transient(exc: BaseException) -> bool:
    """A "database is locked / busy" error: this one operation failed, the cache is fine."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    """A new connection to the cache at ``path`` (created, in WAL mode, its table checked).

    Raises ``sqlite3.Error`` or ``OSError`` when the file cannot be used.
    """
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False
    )
    try:
        # several processes opening a new cache at once: switching to WAL and creating the
        # table can report "locked" without waiting, so retry briefly
        for attempt in range(20):
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(SCHEMA)
                break
            except sqlite3.OperationalError as exc:
                if not is_transient(exc) or attempt == 19:
                    raise
                time.sleep(0.05 * (attempt + 1))
        cols = [r[1] for r in conn.execute("PRAGMA table_info(responses)")]
        if cols[:4] != ["key", "created", "model", "generation"]:
            raise sqlite3.DatabaseError(f"unexpected table layout {cols}")
    except BaseException:
        conn.close()
        raise
    return conn


def store(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Store ``rows`` (key, created, model, generation) in one transaction (all or none)."""
    import sqlite3

    conn.execute("BEGIN IMMEDIATE")
    try:
        for i in range(0, len(rows), INSERT_ROWS):
            part = rows[i:i + INSERT_ROWS]
            # one statement per group of entries: executemany steps (and hands the GIL over)
            # once per entry, which a busy event loop then waits for every time
            conn.execute(insert_sql(len(part)), [v for row in part for v in row])
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
