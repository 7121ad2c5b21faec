"""``sqlite_schema``: the ``CREATE TABLE`` statements of each row's database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from fastdistill.context import StepContext
from fastdistill.rows import Reason, Row
from fastdistill.step import RuntimeParameter, Step
from pydantic import Field, PrivateAttr

from fastdistill_steps._util import require_runtime
from fastdistill_steps.sql.db import connect_read_only, db_file


def read_schema(path: Path, style: str = "ddl") -> str:
    """The schema of a database, tables in creation order.

    ``ddl``: the ``CREATE TABLE`` statements, one per paragraph.  ``compact``: one line per
    table, ``table(col1, col2, ...)`` (small models copy DDL instead of answering).
    """
    conn = connect_read_only(path, immutable=True)
    try:
        if style == "compact":
            tables = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
            ).fetchall()
            lines = []
            for (table,) in tables:
                quoted = str(table).replace('"', '""')
                cols = [c[1] for c in conn.execute(f'PRAGMA table_info("{quoted}")')]
                lines.append(f"{table}({', '.join(cols)})")
            return "\n".join(lines)
        rows = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL "
            "AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
        ).fetchall()
    finally:
        conn.close()
    return "\n\n".join(str(sql).strip().rstrip(";") + ";" for (sql,) in rows)


class SqliteSchema(Step):
    """Add ``schema``: the ``CREATE TABLE`` statements of ``<db_dir>/<db_id>/<db_id>.sqlite``.

    Databases are opened read-only and each schema is read once per run (cached in the
    instance).  A row naming an unknown database is rejected (``invalid_input``).
    """

    path_params: ClassVar[tuple[str, ...]] = ("db_dir",)

    db_dir: Annotated[
        str | None,
        RuntimeParameter("Folder holding <db_id>/<db_id>.sqlite databases.", required=True),
    ] = None
    db_column: str = Field(default="db_id", description="Column with the database id.")
    output_column: str = Field(default="schema", description="Column receiving the schema.")
    style: Literal["ddl", "compact"] = Field(
        default="ddl", description="'ddl': CREATE TABLE statements; 'compact': table(col, ...)."
    )

    _root: str | None = PrivateAttr(default=None)
    _cache: dict[str, str] = PrivateAttr(default_factory=dict)

    def input_columns(self) -> list[str]:
        """The database id column."""
        return [self.db_column]

    def output_columns(self) -> list[str]:
        """The schema column."""
        return [self.output_column]

    def load(self, ctx: StepContext) -> None:
        """Resolve ``db_dir`` and start with an empty cache."""
        self._root = ctx.resolve_path(require_runtime(self, ctx, "db_dir"))
        self._cache = {}

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Add the schema of each row's database."""
        if self._root is None:
            self.load(ctx)
        assert self._root is not None
        out: list[Row] = []
        for row in rows:
            db_id = row.get(self.db_column)
            schema = self._cache.get(db_id) if isinstance(db_id, str) else None
            if schema is None:
                try:
                    schema = read_schema(db_file(self._root, db_id), self.style)
                except (ValueError, OSError, sqlite3.Error) as exc:
                    ctx.reject(row, Reason.INVALID_INPUT, str(exc))
                    continue
                self._cache[str(db_id)] = schema
            out.append({**row, self.output_column: schema})
        return out
