"""Rows, typed rejection reasons, and the columns the engine reserves.

A row is a plain ``dict``.  The engine adds one private column, :data:`ROW_ID`, that identifies
the input row through every step (also across fan-out and convergence); it is stripped from
exported datasets.  Rows a step rejects leave the stream and are kept in the run's rejected set
with a :class:`Rejection`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

Row = dict[str, Any]

#: private column holding the engine's row identity (``"<generator>:<index>"``)
ROW_ID = "_row_id"
#: column with the rejection record in ``rejected.jsonl``
REJECTION = "_rejection"


class Reason(str, Enum):
    """Reject reasons that built-in steps use.  Plugins may use other snake_case codes."""

    DUPLICATE = "duplicate"
    INVALID_INPUT = "invalid_input"
    RULE_FAILED = "rule_failed"
    NO_SQL = "no_sql"
    EXEC_ERROR = "exec_error"
    EXEC_TIMEOUT = "exec_timeout"
    EXEC_MISMATCH = "exec_mismatch"
    LOW_SCORE = "low_score"
    PROVIDER_ERROR = "provider_error"
    TIMEOUT = "timeout"
    EMPTY_OUTPUT = "empty_output"
    LENGTH = "length"
    STEP_ERROR = "step_error"

    def __str__(self) -> str:
        return self.value


_REASON_RE = re.compile(r"[a-z][a-z0-9_]*")


def reason_code(reason: Reason | str) -> str:
    """Validate a reason and return its code string."""
    code = reason.value if isinstance(reason, Reason) else str(reason)
    if not _REASON_RE.fullmatch(code):
        raise ValueError(f"reject reason must be a snake_case code, got {code!r}")
    return code


@dataclass(frozen=True)
class Rejection:
    """Why a row left the stream: the reason code, the step that rejected it, and details."""

    reason: str
    step: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return asdict(self)


def public_row(row: Row) -> Row:
    """The row without engine-private columns (those starting with ``_``)."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


def row_failure(exc: BaseException, row: Row, step: Any, step_name: str) -> tuple[Reason, str]:
    """Reason and detail for ``row``, whose processing by ``step`` raised ``exc``:
    ``invalid_input`` when the row lacks a column the step declares as an input (the
    ``KeyError`` names it), ``step_error`` for anything else (the step's own error)."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        name = exc.args[0]
        try:
            declared = step.input_columns()
        except Exception:
            declared = []
        if name in declared and name not in row:
            return Reason.INVALID_INPUT, f"missing column {name!r}, which step {step_name!r} needs"
    return Reason.STEP_ERROR, f"{type(exc).__name__}: {exc}"
