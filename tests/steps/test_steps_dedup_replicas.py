"""Exact dedup stays exact with several replicas (rows routed by key) and across resume."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from fastdistill import Pipeline, Step
from fastdistill.builtins.steps import LoadFromDicts

from fastdistill_steps.dedup import DedupExact


def _rows(n: int) -> list[dict]:
    return [{"id": i, "sample_id": f"k{i % 37}"} for i in range(n)]


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_dedup_with_replicas_keeps_exactly_one_per_key(tmp_path: Path, mode: str) -> None:
    p = Pipeline(
        "dd",
        LoadFromDicts(data=_rows(300), batch_size=20)
        >> DedupExact(replicas=3, replica_mode=mode, input_batch_size=7),
    )
    result = p.run(tmp_path / mode)
    kept = result.read_dataset()
    assert sorted(r["sample_id"] for r in kept) == sorted(f"k{i}" for i in range(37))
    # the first occurrence of each key (lowest id) is the one kept
    assert {r["sample_id"]: r["id"] for r in kept} == {f"k{i}": i for i in range(37)}
    rejected = result.read_rejected()
    assert len(rejected) == 300 - 37
    assert {r["_rejection"]["reason"] for r in rejected} == {"duplicate"}
    assert multiprocessing.active_children() == []


class Stopper(Step):
    """Cancels the run once it has seen ``stop_after`` rows (simulates a kill mid-run)."""

    stop_after: int | None = None
    seen: int = 0

    def process(self, rows, ctx):
        self.seen += len(rows)
        if self.stop_after is not None and self.seen >= self.stop_after:
            ctx.cancel_event.set()
        return rows


def test_dedup_state_survives_resume(tmp_path: Path) -> None:
    out = tmp_path / "o"
    rows = _rows(200)
    first = Pipeline(
        "dd",
        LoadFromDicts(data=rows, batch_size=10)
        >> DedupExact(input_batch_size=10)
        >> Stopper(stop_after=20, input_batch_size=10),
    )
    partial = first.run(out)
    assert partial.cancelled
    second = Pipeline(
        "dd",
        LoadFromDicts(data=rows, batch_size=10)
        >> DedupExact(input_batch_size=10)
        >> Stopper(input_batch_size=10),
    )
    result = second.run(out)
    assert not result.cancelled and not result.reused
    kept = result.read_dataset()
    assert {r["sample_id"]: r["id"] for r in kept} == {f"k{i}": i for i in range(37)}
    assert len(result.read_rejected()) == 163
