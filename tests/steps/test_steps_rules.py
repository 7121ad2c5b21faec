"""rule_filter and the SQL lexical helpers it relies on."""

from __future__ import annotations

import pytest
from fastdistill import ROW_ID, Reason
from fastdistill.testing import make_context, run_step
from pydantic import ValidationError

from fastdistill_steps.sql.rules import RuleFilter
from fastdistill_steps.sql.text import has_top_level_order_by, mask, split_statements

SCHEMA = 'CREATE TABLE "singer" (id int);\n\nCREATE TABLE concert (id int, singer_id int);'


def _check(rules: list[str], sql: str, **kw: object) -> tuple[bool, str]:
    row = {ROW_ID: "g:0", "sql": sql, "schema": SCHEMA}
    kept, rejected = run_step(RuleFilter(rules=rules, **kw), [row])
    if kept:
        assert kept == [row]
        return True, ""
    [(_, rej)] = rejected
    assert rej.reason == Reason.RULE_FAILED.value
    return False, rej.detail


@pytest.mark.parametrize(
    "rule, sql, ok",
    [
        ("select_only", "SELECT 1", True),
        ("select_only", "  -- comment\nwith c AS (SELECT 1) SELECT * FROM c", True),
        ("select_only", "DELETE FROM singer", False),
        ("select_only", "EXPLAIN SELECT 1", False),
        ("single_statement", "SELECT 1;", True),
        ("single_statement", "SELECT ';' FROM t -- ; trailing", True),
        ("single_statement", "SELECT 1; SELECT 2", False),
        ("no_write", "SELECT name FROM singer WHERE note = 'drop table x; delete'", True),
        ("no_write", "SELECT replace(name, 'a', 'b') FROM singer", True),
        ("no_write", 'SELECT "update" FROM singer -- insert', True),
        ("no_write", "SELECT 1; DROP TABLE singer", False),
        ("no_write", "WITH x AS (SELECT 1) DELETE FROM singer", False),
        ("no_write", "INSERT OR REPLACE INTO singer VALUES (1)", False),
        ("no_write", "REPLACE INTO singer VALUES (1)", False),
        ("no_write", "ATTACH DATABASE 'x.db' AS x", False),
        ("no_write", "pragma writable_schema = 1", False),
        ("no_write", "VACUUM", False),
        ("references_known_tables", "SELECT * FROM singer JOIN concert ON 1", True),
        ("references_known_tables", "WITH c AS (SELECT 1) SELECT * FROM c, singer", True),
        ("references_known_tables", "SELECT * FROM (SELECT 1) JOIN Singer", True),
        ("references_known_tables", "SELECT * FROM singers", False),
    ],
)
def test_rules(rule: str, sql: str, ok: bool) -> None:
    passed, detail = _check([rule], sql)
    assert passed is ok
    if not ok:
        assert detail.startswith(f"{rule}:")


def test_max_length_rule() -> None:
    assert _check(["max_length"], "SELECT 1", max_chars=8)[0]
    passed, detail = _check(["max_length"], "SELECT 10", max_chars=8)
    assert not passed and "max_chars=8" in detail


def test_first_failing_rule_is_named_and_metrics_counted() -> None:
    rows = [
        {"sql": "SELECT 1"},
        {"sql": "DROP TABLE singer"},
        {"sql": "SELECT 1; SELECT 2"},
        {"sql": None},
    ]
    ctx = make_context("rules")
    kept, rejected = run_step(RuleFilter(rules=["select_only", "single_statement"]), rows, ctx)
    assert kept == [{"sql": "SELECT 1"}]
    details = [(rej.reason, rej.detail.split(":")[0]) for _, rej in rejected]
    assert details == [
        ("rule_failed", "select_only"),
        ("rule_failed", "single_statement"),
        ("invalid_input", "column 'sql' has no SQL"),
    ]
    counters = ctx.metrics.counters()
    assert counters["checked"] == 4 and counters["passed"] == 1
    assert RuleFilter.summarize_metrics(counters) == {"pass_rate": 0.25}


def test_unknown_rule_lists_valid_names() -> None:
    with pytest.raises(ValidationError) as info:
        RuleFilter(rules=["select_only", "no_writes"])
    text = str(info.value)
    assert "no_writes" in text
    for name in ("select_only", "single_statement", "no_write", "max_length"):
        assert name in text


def test_rule_filter_defaults_and_columns() -> None:
    step = RuleFilter(column="pred")
    assert RuleFilter.is_gate
    assert step.rules == ["select_only", "single_statement", "no_write", "max_length"]
    assert step.input_columns() == ["pred"]
    assert RuleFilter(rules=["references_known_tables"]).input_columns() == ["sql", "schema"]


def test_lexical_helpers() -> None:
    sql = "SELECT 'a;b', \"c;d\" FROM t /* ; */ WHERE x = 'it''s' -- ;\n; SELECT 2"
    assert len(mask(sql)) == len(sql)
    assert split_statements(sql) == [sql.split("\n;")[0], "SELECT 2"]
    assert has_top_level_order_by("SELECT a FROM t ORDER BY a")
    assert not has_top_level_order_by("SELECT a FROM t WHERE a = (SELECT a FROM t ORDER BY a LIMIT 1)")
    assert not has_top_level_order_by("SELECT 'order by' FROM t")
