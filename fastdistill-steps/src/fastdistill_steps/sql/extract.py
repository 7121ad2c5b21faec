"""``extract_sql``: the SQL query inside a teacher's answer."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import ClassVar

from fastdistill.context import StepContext
from fastdistill.rows import Reason, Row
from fastdistill.step import Step
from pydantic import Field

from fastdistill_steps.sql.text import split_statements

_THINK_BLOCK = re.compile(r"<(think|thinking)>.*?</\1>", re.IGNORECASE | re.DOTALL)
_THINK_CLOSE = re.compile(r"</(?:think|thinking)>", re.IGNORECASE)
_THINK_OPEN = re.compile(r"<(?:think|thinking)>", re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n`]*\n?(.*?)```", re.DOTALL)
_OPEN_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n`]*\n?", re.DOTALL)
_SQL_LANGS = {"sql", "sqlite", "sqlite3", "postgresql", "postgres", "mysql", "tsql", "plsql"}
_PREFIX = re.compile(
    r"^\s*(?:\*\*)?(?:final\s+)?(?:sql\s+query|sql|answer|query|output|result)\s*(?:\*\*)?\s*[:=-]\s*(?:\*\*)?",
    re.IGNORECASE,
)
_STATEMENT_START = re.compile(
    r"(?:SELECT|WITH|INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|PRAGMA|REPLACE|ATTACH|DETACH|VACUUM|"
    r"VALUES|EXPLAIN)\b",
    re.IGNORECASE,
)
_CTE = r"WITH\s+(?:RECURSIVE\s+)?[A-Za-z_\"`\[][\w\"`\]]*\s*(?:\([^)]*\)\s*)?AS\s*(?:NOT\s+)?(?:MATERIALIZED\s+)?\("
_QUERY_UPPER = re.compile(rf"\bSELECT\b|\b{_CTE}")
_QUERY_ANY = re.compile(rf"\bselect\b|\b{_CTE}", re.IGNORECASE)
_WRITE_AFTER_LABEL = re.compile(
    r"(?:^|[:\n])\s*((?:INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|PRAGMA|REPLACE|ATTACH)\b)"
)
_CONTINUATION = re.compile(
    r"(?:FROM|WHERE|JOIN|INNER|LEFT|RIGHT|FULL|CROSS|NATURAL|ON|AND|OR|NOT|GROUP|ORDER|HAVING|"
    r"LIMIT|OFFSET|UNION|INTERSECT|EXCEPT|SELECT|AS|CASE|WHEN|THEN|ELSE|END|IN|EXISTS|BETWEEN|"
    r"LIKE|IS|ASC|DESC|BY|WITH)\b|[(),*]|--",
    re.IGNORECASE,
)


def _strip_think(text: str) -> str:
    text = _THINK_BLOCK.sub(" ", text)
    closes = list(_THINK_CLOSE.finditer(text))
    if closes:  # reasoning whose opening tag was in the prompt: keep what follows it
        text = text[closes[-1].end() :]
    opened = _THINK_OPEN.search(text)
    if opened:  # reasoning cut off before its end: what follows is unfinished thought
        text = text[: opened.start()]
    return text


def _fenced(text: str) -> str | None:
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]
    for wanted in (lambda lang: lang in _SQL_LANGS, lambda lang: lang == "", lambda lang: True):
        for lang, body in blocks:
            if wanted(lang) and body.strip():
                return body
    if not blocks:
        opened = _OPEN_FENCE.search(text)
        if opened:  # an answer cut off inside its code block
            return text[opened.end() :]
    return None


def _drop_trailing_prose(sql: str) -> str:
    paragraphs = re.split(r"\n[ \t]*\n", sql)
    kept = [paragraphs[0]]
    for para in paragraphs[1:]:
        if not _CONTINUATION.match(para.strip()):
            break
        kept.append(para)
    return "\n\n".join(kept)


def _locate(candidate: str) -> str | None:
    text = candidate.strip()
    while True:
        stripped = _PREFIX.sub("", text, count=1).strip()
        if stripped == text:
            break
        text = stripped
    text = text.strip("`").strip()
    if _STATEMENT_START.match(text):
        return text
    found = _QUERY_UPPER.search(text) or _QUERY_ANY.search(text)
    if found is not None:
        return text[found.start() :]
    write = _WRITE_AFTER_LABEL.search(text)
    return text[write.start(1) :] if write is not None else None


def extract_sql(generation: object) -> tuple[str | None, str]:
    """``(sql, "")`` for the first SQL statement in ``generation``, or ``(None, why)``.

    Handles ``<think>`` blocks (closed, unclosed, or only a closing tag), fenced code blocks
    (the first ```` ```sql ```` block, else the first plain one), labels such as ``SQL:`` or
    ``Answer:``, prose before the query, prose after it, and several statements (the first is
    kept, without its trailing semicolon).
    """
    if not isinstance(generation, str):
        return None, "no generation" if generation is None else f"generation is a {type(generation).__name__}"
    if not generation.strip():
        return None, "empty generation"
    text = _strip_think(generation)
    if not text.strip():
        return None, "only reasoning (<think>), no answer"
    body = _fenced(text)
    sql = _locate(body if body is not None else text)
    if sql is None and body is not None:
        sql = _locate(text.replace("```", " "))
    if sql is None:
        return None, "no SQL statement found"
    sql = _drop_trailing_prose(sql.replace("```", " "))
    statements = split_statements(sql)
    if not statements:
        return None, "no SQL statement found"
    first = statements[0].rstrip().rstrip(";").rstrip().rstrip("`").rstrip()
    return (first, "") if first else (None, "no SQL statement found")


class ExtractSql(Step):
    """Extract the SQL query from a teacher's answer into ``sql``.

    Rows with no answer or no recognisable SQL are rejected with reason ``no_sql``.
    """

    #: a pure function of the row: recomputed on resume, not checkpointed
    deterministic: ClassVar[bool] = True

    input_column: str = Field(default="generation", description="Column with the answer text.")
    output_column: str = Field(default="sql", description="Column receiving the SQL.")

    def input_columns(self) -> list[str]:
        """The answer column."""
        return [self.input_column]

    def output_columns(self) -> list[str]:
        """The SQL column."""
        return [self.output_column]

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Add the extracted SQL; reject rows without any."""
        out: list[Row] = []
        for row in rows:
            sql, why = extract_sql(row.get(self.input_column))
            if sql is None:
                ctx.reject(row, Reason.NO_SQL, f"{self.input_column}: {why}")
                continue
            out.append({**row, self.output_column: sql})
        return out
