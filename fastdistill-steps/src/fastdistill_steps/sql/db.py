"""Locating and opening SQLite databases read-only (``<db_dir>/<db_id>/<db_id>.sqlite``)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

_DB_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def db_file(db_dir: str | Path, db_id: object) -> Path:
    """The database file of ``db_id``; raises ``ValueError`` for a malformed id or missing file."""
    if not isinstance(db_id, str) or not _DB_ID.fullmatch(db_id) or ".." in db_id:
        raise ValueError(f"invalid database id {db_id!r}")
    path = Path(db_dir) / db_id / f"{db_id}.sqlite"
    if not path.is_file():
        raise ValueError(f"unknown database {db_id!r}: no file {path}")
    return path


def connect_read_only(path: Path, *, immutable: bool = False) -> sqlite3.Connection:
    """Open ``path`` read-only (``mode=ro``; ``immutable=1`` skips locking for static files).

    ``PRAGMA query_only`` is switched on as a second guard against writes.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA query_only = ON")
    return conn
