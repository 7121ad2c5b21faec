"""extract_sql on the answer shapes teachers produce."""

from __future__ import annotations

import pytest
from fastdistill import ROW_ID, Reason
from fastdistill.testing import run_step

from fastdistill_steps.sql.extract import ExtractSql, extract_sql

CASES = [
    ("plain", "SELECT count(*) FROM singer;", "SELECT count(*) FROM singer"),
    ("sql fence", "Here:\n```sql\nSELECT name\nFROM singer;\n```\nDone.", "SELECT name\nFROM singer"),
    ("plain fence", "```\nSELECT 1\n```", "SELECT 1"),
    ("sql fence preferred", "```python\nx = 1\n```\n```sql\nSELECT 5\n```", "SELECT 5"),
    ("first sql fence", "```sql\nSELECT 1\n```\nor\n```sql\nSELECT 2\n```", "SELECT 1"),
    ("unclosed fence", "```sql\nSELECT a FROM t", "SELECT a FROM t"),
    ("think block", "<think>maybe SELECT x FROM y?</think>\nSELECT a FROM t", "SELECT a FROM t"),
    ("think + fence", "<think>\nplan\n</think>\n```sql\nSELECT 2;\n```", "SELECT 2"),
    ("orphan close tag", "I think SELECT z</think>\nSELECT b FROM t", "SELECT b FROM t"),
    ("SQL prefix", "SQL: SELECT a FROM t", "SELECT a FROM t"),
    ("Answer prefix", "Answer: select a from t", "select a from t"),
    ("Query prefix", "Query:\nSELECT a FROM t;", "SELECT a FROM t"),
    ("bold prefix + inline code", "**SQL:** `SELECT 1`", "SELECT 1"),
    ("leading prose", "We count the singers. SELECT count(*) FROM singer", "SELECT count(*) FROM singer"),
    ("prose mentioning with", "Start with the table: SELECT a FROM t", "SELECT a FROM t"),
    ("cte after prose", "Using a CTE: WITH c AS (SELECT 1 AS x) SELECT x FROM c;",
     "WITH c AS (SELECT 1 AS x) SELECT x FROM c"),
    ("trailing prose", "SELECT a FROM t\n\nThis returns every a.", "SELECT a FROM t"),
    ("blank line inside query", "SELECT a\nFROM t\n\nWHERE b = 1", "SELECT a\nFROM t\n\nWHERE b = 1"),
    ("several statements", "SELECT 1; SELECT 2;", "SELECT 1"),
    ("semicolon in literal", "SELECT ';' AS s FROM t; DROP TABLE t", "SELECT ';' AS s FROM t"),
    ("trailing semicolons and space", "SELECT 1 ;;  \n", "SELECT 1"),
    ("write statement kept for the rules", "Here it is: DROP TABLE singer;", "DROP TABLE singer"),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_extract_sql(text: str, expected: str) -> None:
    assert extract_sql(text) == (expected, "")


@pytest.mark.parametrize(
    "text, why",
    [
        (None, "no generation"),
        ("", "empty"),
        ("   \n", "empty"),
        ("I cannot answer that question.", "no SQL"),
        ("<think>Let me SELECT the right table... and then", "reasoning"),
        ("<think>all thought</think>", "reasoning"),
        (42, "int"),
    ],
)
def test_extract_sql_finds_nothing(text: object, why: str) -> None:
    sql, detail = extract_sql(text)
    assert sql is None and why in detail


def test_extract_sql_step_adds_column_and_rejects_no_sql() -> None:
    rows = [
        {ROW_ID: "g:0", "generation": "```sql\nSELECT 1;\n```"},
        {ROW_ID: "g:1", "generation": "Sorry, no idea."},
        {ROW_ID: "g:2", "generation": None},
    ]
    kept, rejected = run_step(ExtractSql(), rows)
    assert kept == [{ROW_ID: "g:0", "generation": "```sql\nSELECT 1;\n```", "sql": "SELECT 1"}]
    assert [(r[ROW_ID], rej.reason) for r, rej in rejected] == [
        ("g:1", Reason.NO_SQL.value),
        ("g:2", Reason.NO_SQL.value),
    ]
    assert all(rej.detail for _, rej in rejected)


def test_extract_sql_custom_columns() -> None:
    step = ExtractSql(input_column="answer", output_column="pred")
    assert step.input_columns() == ["answer"] and step.output_columns() == ["pred"]
    kept, _ = run_step(step, [{"answer": "Query: SELECT 3"}])
    assert kept[0]["pred"] == "SELECT 3"
