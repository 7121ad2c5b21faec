"""``rule_filter``: cheap static checks on SQL before anything is executed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any, ClassVar

from fastdistill.context import StepContext
from fastdistill.rows import Reason, Row
from fastdistill.step import Step
from pydantic import Field, field_validator

from fastdistill_steps.sql.text import first_keyword, mask, split_statements

#: keywords that change a database (``REPLACE`` only as a statement, not the ``replace()`` function)
WRITE_KEYWORDS = ("INSERT", "UPDATE", "DELETE", "DROP", "ALTER", "CREATE", "ATTACH", "DETACH",
                  "PRAGMA", "REPLACE", "VACUUM", "REINDEX")
_WRITE_RE = re.compile(
    r"\b(INSERT|UPDATE|DELETE|DROP|ALTER|CREATE|ATTACH|DETACH|PRAGMA|VACUUM|REINDEX)\b"
    r"|\bREPLACE\b(?!\s*\()",
    re.IGNORECASE,
)
_TABLE_REF = re.compile(r"\b(?:FROM|JOIN)\s+((?:[A-Za-z_][\w$]*|\"[^\"]+\"|`[^`]+`|\[[^\]]+\])"
                        r"(?:\s*\.\s*(?:[A-Za-z_][\w$]*|\"[^\"]+\"|`[^`]+`|\[[^\]]+\]))?)",
                        re.IGNORECASE)
_CTE_NAME = re.compile(r"(?:\bWITH\s+(?:RECURSIVE\s+)?|,\s*)([A-Za-z_][\w$]*|\"[^\"]+\")\s*"
                       r"(?:\([^)]*\)\s*)?AS\s*(?:NOT\s+)?(?:MATERIALIZED\s+)?\(", re.IGNORECASE)
_CREATE_TABLE = re.compile(r"CREATE\s+(?:VIRTUAL\s+)?(?:TABLE|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?"
                           r"(\"[^\"]+\"|`[^`]+`|\[[^\]]+\]|'[^']+'|[\w$]+)", re.IGNORECASE)

Check = Callable[[str, "RuleFilter", Row], "str | None"]


def _ident(name: str) -> str:
    name = name.split(".")[-1].strip()
    if name[:1] in "\"`['" and len(name) >= 2:
        name = name[1:-1]
    return name.lower()


def _select_only(sql: str, step: RuleFilter, row: Row) -> str | None:
    kw = first_keyword(sql)
    return None if kw in ("SELECT", "WITH") else f"starts with {kw or 'nothing'}, not SELECT/WITH"


def _single_statement(sql: str, step: RuleFilter, row: Row) -> str | None:
    n = len(split_statements(sql))
    return None if n == 1 else f"{n} statements"


def _no_write(sql: str, step: RuleFilter, row: Row) -> str | None:
    found = _WRITE_RE.search(mask(sql, identifiers=True))
    return None if found is None else f"writes to the database ({found.group(0).upper()})"


def _max_length(sql: str, step: RuleFilter, row: Row) -> str | None:
    return None if len(sql) <= step.max_chars else f"{len(sql)} chars > max_chars={step.max_chars}"


def _references_known_tables(sql: str, step: RuleFilter, row: Row) -> str | None:
    schema = row.get(step.schema_column)
    if not isinstance(schema, str) or not schema.strip():
        return f"no schema in column {step.schema_column!r}"
    known = {_ident(m.group(1)) for m in _CREATE_TABLE.finditer(schema)}
    masked = mask(sql, identifiers=False)
    known |= {_ident(m.group(1)) for m in _CTE_NAME.finditer(masked)}
    unknown = sorted({_ident(m.group(1)) for m in _TABLE_REF.finditer(masked)} - known)
    return None if not unknown else f"unknown table(s) {', '.join(unknown)}"


#: rule name -> check(sql, step, row) returning ``None`` (pass) or why it failed
RULES: MappingProxyType[str, Check] = MappingProxyType({
    "select_only": _select_only,
    "single_statement": _single_statement,
    "no_write": _no_write,
    "max_length": _max_length,
    "references_known_tables": _references_known_tables,
})


class RuleFilter(Step):
    """Reject SQL that fails any of the chosen ``rules`` (reason ``rule_failed``, rule named).

    Rules: ``select_only`` (starts with SELECT or WITH), ``single_statement``, ``no_write`` (no
    writing keyword outside literals and comments), ``max_length`` (``max_chars``), and
    ``references_known_tables`` (every ``FROM``/``JOIN`` table is in ``schema_column``'s
    ``CREATE TABLE`` statements or is a CTE).  Rules run in the order given; the first failure
    rejects the row.
    """

    #: a pure function of the row: recomputed on resume, not checkpointed
    deterministic: ClassVar[bool] = True

    is_gate: ClassVar[bool] = True

    rules: list[str] = Field(
        default_factory=lambda: ["select_only", "single_statement", "no_write", "max_length"],
        description=f"Rules to apply, from: {', '.join(RULES)}.",
    )
    column: str = Field(default="sql", description="Column with the SQL to check.")
    max_chars: int = Field(default=2000, ge=1, description="Limit of the max_length rule.")
    schema_column: str = Field(default="schema", description="Schema for references_known_tables.")

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        unknown = [r for r in value if r not in RULES]
        if unknown:
            raise ValueError(f"unknown rule(s) {unknown}; valid rules: {', '.join(RULES)}")
        return value

    def input_columns(self) -> list[str]:
        """The SQL column (and the schema column for references_known_tables)."""
        cols = [self.column]
        if "references_known_tables" in self.rules:
            cols.append(self.schema_column)
        return cols

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Keep rows that pass every rule."""
        out: list[Row] = []
        for row in rows:
            ctx.metrics.incr("checked")
            sql = row.get(self.column)
            if not isinstance(sql, str) or not sql.strip():
                ctx.reject(row, Reason.INVALID_INPUT, f"column {self.column!r} has no SQL")
                continue
            failure = self._first_failure(sql, row)
            if failure is not None:
                rule, why = failure
                ctx.metrics.incr(f"failed.{rule}")
                ctx.reject(row, Reason.RULE_FAILED, f"{rule}: {why}")
                continue
            ctx.metrics.incr("passed")
            out.append(row)
        return out

    def _first_failure(self, sql: str, row: Row) -> tuple[str, str] | None:
        for rule in self.rules:
            why = RULES[rule](sql, self, row)
            if why is not None:
                return rule, why
        return None

    @classmethod
    def summarize_metrics(cls, metrics: dict[str, Any]) -> dict[str, Any]:
        """``pass_rate`` = passed / checked."""
        checked = metrics.get("checked", 0)
        return {"pass_rate": metrics.get("passed", 0) / checked if checked else None}
