"""score_exec and quality_gate."""

from __future__ import annotations

import pytest
from fastdistill import ROW_ID, Reason
from fastdistill.testing import make_context, run_step

from fastdistill_steps.scoring import QualityGate, ScoreExec

STATUSES = ["match", "mismatch", "error", "timeout"]


def test_score_exec_default_weights() -> None:
    rows = [{ROW_ID: f"g:{i}", "exec_status": s} for i, s in enumerate([*STATUSES, None])]
    kept, rejected = run_step(ScoreExec(), rows)
    assert rejected == []
    assert [r["score"] for r in kept] == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert kept[0]["score_reason"] == "exec_status=match"
    assert "unknown" in kept[-1]["score_reason"]
    assert kept[0][ROW_ID] == "g:0"


def test_score_exec_custom_weights() -> None:
    step = ScoreExec(weights={"mismatch": 0.5}, default_score=-1.0)
    kept, _ = run_step(step, [{"exec_status": "mismatch"}, {"exec_status": "match"}, {"exec_status": "odd"}])
    assert [r["score"] for r in kept] == [0.5, 1.0, -1.0]
    assert step.output_columns() == ["score", "score_reason"]


@pytest.mark.parametrize(
    "status, reason",
    [
        ("mismatch", Reason.EXEC_MISMATCH),
        ("error", Reason.EXEC_ERROR),
        ("timeout", Reason.EXEC_TIMEOUT),
        ("weird", Reason.LOW_SCORE),
        (None, Reason.LOW_SCORE),
    ],
)
def test_quality_gate_reasons_follow_status(status: str | None, reason: Reason) -> None:
    row = {ROW_ID: "g:0", "score": 0.0, "exec_status": status, "exec_error": "boom"}
    kept, rejected = run_step(QualityGate(), [row])
    assert kept == []
    [(r, rej)] = rejected
    assert r == row and rej.reason == reason.value
    assert "min_score=1" in rej.detail


def test_quality_gate_keeps_and_counts() -> None:
    rows = [
        {"score": 1.0, "exec_status": "match"},
        {"score": 0.0, "exec_status": "mismatch"},
        {"score": 0.7},
        {"score": None},
        {"score": float("nan")},
    ]
    ctx = make_context("gate")
    kept, rejected = run_step(QualityGate(min_score=0.5, status_column=None), rows, ctx)
    assert kept == [rows[0], rows[2]]
    assert {rej.reason for _, rej in rejected} == {Reason.LOW_SCORE.value}
    counters = ctx.metrics.counters()
    assert counters["checked"] == 5 and counters["kept"] == 2
    assert QualityGate.summarize_metrics(counters) == {"keep_rate": 0.4}
    assert QualityGate.summarize_metrics({}) == {"keep_rate": None}
    assert QualityGate.is_gate
