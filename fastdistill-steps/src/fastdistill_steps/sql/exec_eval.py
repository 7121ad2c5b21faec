"""``sqlite_exec_eval``: execute the teacher's SQL and the gold SQL, compare the results."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, ClassVar

from fastdistill.context import StepContext
from fastdistill.rows import Reason, Row
from fastdistill.step import RuntimeParameter, Step
from pydantic import Field, PrivateAttr

from fastdistill_steps._util import require_runtime
from fastdistill_steps.sql.db import connect_read_only, db_file
from fastdistill_steps.sql.execution import QueryResult, guard, run_query, same_result
from fastdistill_steps.sql.text import has_top_level_order_by

EXEC_STATUSES = ("match", "mismatch", "error", "timeout")


class SqliteExecEval(Step):
    """Run the teacher's ``sql`` and the ``gold_sql`` on ``<db_dir>/<db_id>/<db_id>.sqlite``.

    Databases are opened read-only (``mode=ro``, ``PRAGMA query_only``, and an authorizer that
    allows reading only), so a writing statement fails and never changes a file.  Each query is
    stopped after ``timeout_s``.  Results are compared as multisets of rows, or as ordered lists
    when the gold query has a top-level ``ORDER BY``; floats are rounded to 6 decimals.

    Adds ``exec_status`` (``match``/``mismatch``/``error``/``timeout``), ``exec_pass``,
    ``exec_error`` and ``exec_row_count``.  The teacher's outcome never rejects a row (a
    downstream gate does); a row whose database is unknown or whose gold SQL fails is rejected
    as ``invalid_input``, since the teacher is not at fault.
    """

    path_params: ClassVar[tuple[str, ...]] = ("db_dir",)

    is_gate: ClassVar[bool] = True

    db_dir: Annotated[
        str | None,
        RuntimeParameter("Folder holding <db_id>/<db_id>.sqlite databases.", required=True),
    ] = None
    sql_column: str = Field(default="sql", description="Column with the teacher's SQL.")
    gold_column: str = Field(default="gold_sql", description="Column with the reference SQL.")
    db_column: str = Field(default="db_id", description="Column with the database id.")
    timeout_s: float = Field(default=2.0, gt=0, description="Time limit of the teacher's query.")
    gold_timeout_s: float = Field(default=10.0, gt=0, description="Time limit of the gold query.")
    max_rows: int = Field(default=10000, ge=1, description="Largest result fetched.")

    _root: str | None = PrivateAttr(default=None)
    _gold: dict[tuple[str, str], QueryResult] = PrivateAttr(default_factory=dict)

    def input_columns(self) -> list[str]:
        """The SQL, gold SQL and database columns."""
        return [self.sql_column, self.gold_column, self.db_column]

    def output_columns(self) -> list[str]:
        """The execution verdict columns."""
        return ["exec_status", "exec_pass", "exec_error", "exec_row_count"]

    def load(self, ctx: StepContext) -> None:
        """Resolve ``db_dir``; start with an empty gold-result cache."""
        self._root = ctx.resolve_path(require_runtime(self, ctx, "db_dir"))
        self._gold = {}

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Evaluate each row (connections are opened per batch and closed after it)."""
        if self._root is None:
            self.load(ctx)
        conns: dict[Path, sqlite3.Connection] = {}
        out: list[Row] = []
        try:
            for row in rows:
                done = self._evaluate(row, ctx, conns)
                if done is not None:
                    out.append(done)
        finally:
            for conn in conns.values():
                conn.close()
        return out

    def _connection(self, path: Path, conns: dict[Path, sqlite3.Connection]) -> sqlite3.Connection:
        conn = conns.get(path)
        if conn is None:
            conn = connect_read_only(path)
            guard(conn)
            conns[path] = conn
        return conn

    def _evaluate(self, row: Row, ctx: StepContext, conns: dict[Path, sqlite3.Connection]) -> Row | None:
        assert self._root is not None
        gold_sql = row.get(self.gold_column)
        if not isinstance(gold_sql, str) or not gold_sql.strip():
            ctx.reject(row, Reason.INVALID_INPUT, f"column {self.gold_column!r} has no gold SQL")
            return None
        try:
            path = db_file(self._root, row.get(self.db_column))
            conn = self._connection(path, conns)
        except (ValueError, sqlite3.Error) as exc:
            ctx.reject(row, Reason.INVALID_INPUT, str(exc))
            return None
        key = (str(path), gold_sql)
        gold = self._gold.get(key)
        if gold is None:
            gold = run_query(conn, gold_sql, timeout_s=self.gold_timeout_s, max_rows=self.max_rows,
                             cancel=ctx.cancel_event)
            self._gold[key] = gold
        if gold.status != "ok":
            ctx.reject(row, Reason.INVALID_INPUT, f"gold SQL failed on {path.name}: {gold.error}")
            return None
        ctx.metrics.incr("evaluated")
        sql = row.get(self.sql_column)
        if not isinstance(sql, str) or not sql.strip():
            pred = QueryResult("error", error=f"column {self.sql_column!r} has no SQL")
        else:
            pred = run_query(conn, sql, timeout_s=self.timeout_s, max_rows=self.max_rows,
                             cancel=ctx.cancel_event)
        if pred.status == "ok":
            assert pred.rows is not None and gold.rows is not None
            ordered = has_top_level_order_by(gold_sql)
            status = "match" if same_result(pred.rows, gold.rows, ordered=ordered) else "mismatch"
        else:
            status = pred.status
        ctx.metrics.incr({"match": "passed", "mismatch": "mismatches", "error": "errors",
                          "timeout": "timeouts"}[status])
        return {
            **row,
            "exec_status": status,
            "exec_pass": status == "match",
            "exec_error": pred.error,
            "exec_row_count": len(pred.rows) if pred.rows is not None else None,
        }

    @classmethod
    def summarize_metrics(cls, metrics: dict[str, Any]) -> dict[str, Any]:
        """``exec_pass_rate``, ``error_rate``, ``timeout_rate``, ``mismatch_rate`` (of evaluated)."""
        n = metrics.get("evaluated", 0)

        def rate(key: str) -> float | None:
            return metrics.get(key, 0) / n if n else None

        return {
            "exec_pass_rate": rate("passed"),
            "error_rate": rate("errors"),
            "timeout_rate": rate("timeouts"),
            "mismatch_rate": rate("mismatches"),
            "evaluated": n,
        }
