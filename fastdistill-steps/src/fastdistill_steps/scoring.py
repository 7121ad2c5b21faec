"""Scores from execution verdicts, and the gate that keeps rows scoring high enough."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar

from fastdistill.context import StepContext
from fastdistill.rows import Reason, Row
from fastdistill.step import Step
from pydantic import Field

DEFAULT_WEIGHTS: dict[str, float] = {"match": 1.0, "mismatch": 0.0, "error": 0.0, "timeout": 0.0}
_STATUS_REASONS = {
    "mismatch": Reason.EXEC_MISMATCH,
    "error": Reason.EXEC_ERROR,
    "timeout": Reason.EXEC_TIMEOUT,
}


class ScoreExec(Step):
    """Turn ``exec_status`` into a ``score`` (``weights``, match 1.0 and others 0.0 by default).

    ``weights`` is merged over the defaults; a status with no weight (or a missing status)
    scores ``default_score``.  ``score_reason`` says where the score came from.
    """

    #: a pure function of the row: recomputed on resume, not checkpointed
    deterministic: ClassVar[bool] = True

    status_column: str = Field(default="exec_status", description="Column with the verdict.")
    output_column: str = Field(default="score", description="Column receiving the score.")
    weights: dict[str, float] = Field(default_factory=dict, description="Score per status.")
    default_score: float = Field(default=0.0, description="Score of an unknown status.")

    def input_columns(self) -> list[str]:
        """The status column."""
        return [self.status_column]

    def output_columns(self) -> list[str]:
        """The score and its explanation."""
        return [self.output_column, "score_reason"]

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Score each row."""
        weights = {**DEFAULT_WEIGHTS, **self.weights}
        out: list[Row] = []
        for row in rows:
            status = row.get(self.status_column)
            if isinstance(status, str) and status in weights:
                score, why = float(weights[status]), f"{self.status_column}={status}"
            else:
                score, why = self.default_score, f"unknown {self.status_column}={status!r}"
            out.append({**row, self.output_column: score, "score_reason": why})
        return out


class QualityGate(Step):
    """Keep rows with ``column >= min_score``; reject the others with a typed reason.

    With ``status_column`` (default ``exec_status``) the reason follows the execution verdict:
    ``exec_mismatch``, ``exec_error`` or ``exec_timeout``; otherwise ``low_score``.
    """

    #: a pure function of the row: recomputed on resume, not checkpointed
    deterministic: ClassVar[bool] = True

    is_gate: ClassVar[bool] = True

    column: str = Field(default="score", description="Numeric column to threshold.")
    min_score: float = Field(default=1.0, description="Lowest score kept.")
    status_column: str | None = Field(default="exec_status", description="Verdict for reasons.")

    def input_columns(self) -> list[str]:
        """The score column (the status column is optional at run time)."""
        return [self.column]

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Keep rows scoring at least ``min_score``."""
        out: list[Row] = []
        for row in rows:
            ctx.metrics.incr("checked")
            score = row.get(self.column)
            numeric = isinstance(score, (int, float)) and not isinstance(score, bool)
            if numeric and not math.isnan(score) and score >= self.min_score:
                ctx.metrics.incr("kept")
                out.append(row)
                continue
            status = row.get(self.status_column) if self.status_column else None
            reason = _STATUS_REASONS.get(status, Reason.LOW_SCORE) if isinstance(status, str) else Reason.LOW_SCORE
            detail = f"{self.column}={score!r} < min_score={self.min_score:g}"
            if status is not None:
                detail += f" ({self.status_column}={status}"
                err = row.get("exec_error")
                detail += f": {err})" if err else ")"
            ctx.reject(row, reason, detail)
        return out

    @classmethod
    def summarize_metrics(cls, metrics: dict[str, Any]) -> dict[str, Any]:
        """``keep_rate`` = kept / checked."""
        checked = metrics.get("checked", 0)
        return {"keep_rate": metrics.get("kept", 0) / checked if checked else None}
