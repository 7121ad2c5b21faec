"""sqlite_schema and sqlite_exec_eval on the real Spider databases."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from fastdistill import ROW_ID, Reason
from fastdistill.testing import make_context, run_step

from fastdistill_steps.sql.exec_eval import SqliteExecEval
from fastdistill_steps.sql.execution import same_result
from fastdistill_steps.sql.schema import SqliteSchema


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def writable_db_dir(db_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of concert_singer, so that only the step's guards can stop a write."""
    target = tmp_path / "database" / "concert_singer"
    target.mkdir(parents=True)
    shutil.copy2(db_dir / "concert_singer" / "concert_singer.sqlite", target)
    return tmp_path / "database"


def _eval(db_dir: Path, sql: object, gold: str, db_id: str = "concert_singer", **kw: object):
    row = {ROW_ID: "g:0", "sql": sql, "gold_sql": gold, "db_id": db_id}
    ctx = make_context("exec")
    kept, rejected = run_step(SqliteExecEval(db_dir=str(db_dir), **kw), [row], ctx)
    return kept, rejected, ctx


# ------------------------------------------------------------------ schema
def test_sqlite_schema_reads_create_tables(db_dir: Path) -> None:
    rows = [{ROW_ID: "g:0", "db_id": "concert_singer"}, {ROW_ID: "g:1", "db_id": "concert_singer"}]
    kept, rejected = run_step(SqliteSchema(db_dir=str(db_dir)), rows)
    assert rejected == []
    schema = kept[0]["schema"]
    assert schema == kept[1]["schema"]
    assert schema.count("CREATE TABLE") == 4
    for table in ("stadium", "singer", "concert", "singer_in_concert"):
        assert f'"{table}"' in schema or f" {table} " in schema or f"{table}(" in schema
    assert kept[0][ROW_ID] == "g:0"


def test_sqlite_schema_relative_db_dir_and_unknown_db(text2sql_data: Path) -> None:
    ctx = make_context(base_dir=text2sql_data)
    rows = [{"db_id": "pets_1"}, {"db_id": "no_such_db"}, {"db_id": "../pets_1"}, {"db_id": None}]
    kept, rejected = run_step(SqliteSchema(db_dir="database", output_column="ddl"), rows, ctx)
    assert len(kept) == 1 and "CREATE TABLE" in kept[0]["ddl"]
    assert [rej.reason for _, rej in rejected] == [Reason.INVALID_INPUT.value] * 3
    assert "no_such_db.sqlite" in rejected[0][1].detail


# ------------------------------------------------------------------ exec eval
def test_gold_sql_of_real_rows_matches(db_dir: Path, spider_rows: list[dict]) -> None:
    rows = [{**r, "sql": r["gold_sql"]} for r in spider_rows[::10]]
    ctx = make_context("exec")
    kept, rejected = run_step(SqliteExecEval(db_dir=str(db_dir)), rows, ctx)
    assert rejected == []
    assert {r["exec_status"] for r in kept} == {"match"}
    assert all(r["exec_pass"] is True and r["exec_error"] is None for r in kept)
    assert [r["exec_row_count"] for r in kept] == [r["gold_row_count"] for r in rows]
    counters = ctx.metrics.counters()
    assert counters["evaluated"] == counters["passed"] == len(rows)
    assert SqliteExecEval.summarize_metrics(counters)["exec_pass_rate"] == 1.0


def test_wrong_query_mismatches(db_dir: Path) -> None:
    kept, rejected, ctx = _eval(db_dir, "SELECT count(*) FROM stadium", "SELECT count(*) FROM singer")
    assert rejected == []
    assert kept[0]["exec_status"] == "mismatch" and kept[0]["exec_pass"] is False
    assert kept[0]["exec_row_count"] == 1
    assert ctx.metrics.counters()["mismatches"] == 1


def test_order_by_in_gold_compares_in_order(db_dir: Path) -> None:
    gold = "SELECT name FROM singer ORDER BY age DESC"
    assert _eval(db_dir, "SELECT name FROM singer ORDER BY age DESC", gold)[0][0]["exec_status"] == "match"
    assert _eval(db_dir, "SELECT name FROM singer ORDER BY age ASC", gold)[0][0]["exec_status"] == "mismatch"


def test_without_order_by_compares_as_multisets(db_dir: Path) -> None:
    gold = "SELECT name FROM singer"
    assert _eval(db_dir, "SELECT name FROM singer ORDER BY name DESC", gold)[0][0]["exec_status"] == "match"
    # same set of values but different multiplicities is not a match
    doubled = "SELECT name FROM singer UNION ALL SELECT name FROM singer"
    assert _eval(db_dir, doubled, gold)[0][0]["exec_status"] == "mismatch"


def test_same_result_normalises_floats() -> None:
    assert same_result([(1 / 3,)], [(0.3333333,)], ordered=True)
    assert same_result([(2,), (1.0,)], [(1,), (2.0000000001,)], ordered=False)
    assert not same_result([(2,), (1,)], [(1,), (2,)], ordered=True)
    assert not same_result([(1,), (1,)], [(1,)], ordered=False)


def test_drop_table_errors_and_leaves_db_unchanged(writable_db_dir: Path) -> None:
    db = writable_db_dir / "concert_singer" / "concert_singer.sqlite"
    before = _sha256(db)
    for sql in ("DROP TABLE singer", "INSERT INTO singer (Singer_ID) VALUES (999)",
                "DELETE FROM singer", "PRAGMA query_only = OFF",
                f"ATTACH DATABASE '{writable_db_dir / 'evil.db'}' AS evil"):
        kept, rejected, ctx = _eval(writable_db_dir, sql, "SELECT count(*) FROM singer")
        assert rejected == []
        assert kept[0]["exec_status"] == "error", sql
        assert kept[0]["exec_pass"] is False and kept[0]["exec_error"]
        assert ctx.metrics.counters()["errors"] == 1
    assert _sha256(db) == before
    assert not (writable_db_dir / "evil.db").exists()
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
        assert conn.execute("SELECT count(*) FROM singer").fetchone()[0] == 6


def test_drop_table_on_shared_db_leaves_it_unchanged(db_dir: Path) -> None:
    db = db_dir / "concert_singer" / "concert_singer.sqlite"
    before = _sha256(db)
    kept, _, _ = _eval(db_dir, "DROP TABLE singer", "SELECT count(*) FROM singer")
    assert kept[0]["exec_status"] == "error"
    assert _sha256(db) == before
    kept, _, _ = _eval(db_dir, "SELECT count(*) FROM singer", "SELECT count(*) FROM singer")
    assert kept[0]["exec_status"] == "match"


def test_never_ending_query_times_out(db_dir: Path) -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"
    kept, rejected, ctx = _eval(db_dir, endless, "SELECT count(*) FROM singer", timeout_s=0.5)
    assert rejected == []
    assert kept[0]["exec_status"] == "timeout" and kept[0]["exec_pass"] is False
    assert kept[0]["exec_row_count"] is None and "0.5" in kept[0]["exec_error"]
    counters = ctx.metrics.counters()
    assert counters["timeouts"] == 1
    assert SqliteExecEval.summarize_metrics(counters)["timeout_rate"] == 1.0


def test_connection_usable_after_timeout(db_dir: Path) -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT max(x) FROM c"
    rows = [
        {"sql": endless, "gold_sql": "SELECT 1", "db_id": "concert_singer"},
        {"sql": "SELECT 1", "gold_sql": "SELECT 1", "db_id": "concert_singer"},
    ]
    kept, _ = run_step(SqliteExecEval(db_dir=str(db_dir), timeout_s=0.2), rows)
    assert [r["exec_status"] for r in kept] == ["timeout", "match"]


def test_errors_max_rows_and_missing_sql(db_dir: Path) -> None:
    gold = "SELECT name FROM singer"
    assert "no such table" in _eval(db_dir, "SELECT * FROM singers", gold)[0][0]["exec_error"]
    big = _eval(db_dir, "SELECT name FROM singer", gold, max_rows=3)
    # the gold result itself is too large: the row is invalid input, not the teacher's fault
    assert big[0] == [] and big[1][0][1].reason == Reason.INVALID_INPUT.value
    too_many = _eval(db_dir, "SELECT name FROM singer", "SELECT 1", max_rows=3)[0][0]
    assert too_many["exec_status"] == "error" and "max_rows=3" in too_many["exec_error"]
    none = _eval(db_dir, None, gold)[0][0]
    assert none["exec_status"] == "error" and "no SQL" in none["exec_error"]


def test_unknown_db_and_broken_gold_are_invalid_input(db_dir: Path) -> None:
    _, rejected, ctx = _eval(db_dir, "SELECT 1", "SELECT 1", db_id="atlantis")
    assert rejected[0][1].reason == Reason.INVALID_INPUT.value
    assert "atlantis.sqlite" in rejected[0][1].detail
    _, rejected, _ = _eval(db_dir, "SELECT 1", "SELECT * FROM nowhere")
    assert rejected[0][1].reason == Reason.INVALID_INPUT.value and "gold SQL" in rejected[0][1].detail
    assert ctx.metrics.counters().get("evaluated", 0) == 0


def test_exec_eval_contract() -> None:
    assert SqliteExecEval.is_gate
    assert SqliteExecEval.runtime_parameters_info["db_dir"].required
    step = SqliteExecEval(db_dir="x")
    assert step.input_columns() == ["sql", "gold_sql", "db_id"]
    assert step.output_columns() == ["exec_status", "exec_pass", "exec_error", "exec_row_count"]
    summary = SqliteExecEval.summarize_metrics({"evaluated": 4, "passed": 3, "errors": 1})
    assert summary["exec_pass_rate"] == 0.75 and summary["error_rate"] == 0.25
    assert SqliteExecEval.summarize_metrics({})["exec_pass_rate"] is None


def test_sqlite_schema_compact_style_lists_tables_and_columns(db_dir: Path) -> None:
    step = SqliteSchema(db_dir=str(db_dir), style="compact")
    kept, rejected = run_step(step, [{"db_id": "concert_singer", ROW_ID: "g:0"}])
    assert not rejected
    lines = kept[0]["schema"].splitlines()
    assert "singer(Singer_ID, Name, Country, Song_Name, Song_release_year, Age, Is_male)" in lines
    assert all("CREATE" not in line for line in lines)
    assert len(lines) == 4  # stadium, singer, concert, singer_in_concert
