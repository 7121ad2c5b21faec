"""Deterministic steps are recomputed on resume instead of checkpointed."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fastdistill import Pipeline, Reason, Step, StepError
from fastdistill.builtins.steps import KeepColumns, LoadFromDicts


class Calls:
    """Counts rows seen per step (a plain object, shared by reference with the steps)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: dict[str, list[Any]] = {}
        self.fail_from = -1  # Count fails on a batch holding an id >= this (not a parameter:
        # a parameter would change the step's signature)

    def add(self, name: str, rows: list[dict[str, Any]]) -> None:
        with self.lock:
            self.seen.setdefault(name, []).extend(r["id"] for r in rows)


CALLS = Calls()


class Tag(Step):
    deterministic = True
    inputs = ("text",)
    outputs = ("tag",)

    def process(self, rows: list[dict[str, Any]], ctx: Any) -> list[dict[str, Any]]:
        CALLS.add(self.name or "tag", rows)
        out = []
        for r in rows:
            if r["id"] % 10 == 3:
                ctx.reject(r, Reason.RULE_FAILED, "ends in 3")
            else:
                r["tag"] = r["text"].upper()  # in place, as steps may
                out.append(r)
        return out


class Count(Step):
    inputs = ("tag",)
    outputs = ("n",)

    def process(self, rows: list[dict[str, Any]], ctx: Any) -> list[dict[str, Any]]:
        if CALLS.fail_from >= 0 and any(r["id"] >= CALLS.fail_from for r in rows):
            raise SystemExit("killed")  # a step failure stops the run; the rest is kept
        CALLS.add(self.name or "count", rows)
        return [{**r, "n": len(r["tag"])} for r in rows]


def _pipeline(n: int) -> Pipeline:
    rows = [{"id": i, "text": f"row {i}"} for i in range(n)]
    return Pipeline(
        "det",
        LoadFromDicts(name="load", data=rows, batch_size=10)
        >> Tag(name="tag", input_batch_size=10)
        >> Count(name="count", input_batch_size=10)
        >> KeepColumns(name="keep", columns=["id", "tag", "n"], input_batch_size=10),
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x]


def test_deterministic_steps_write_no_checkpoint_and_are_recomputed(tmp_path: Path) -> None:
    CALLS.seen.clear()
    out = tmp_path / "out"
    first = _pipeline(60).run(out, llm_cache=False)
    assert (first.kept, first.rejected) == (54, 6)
    assert (out / ".fastdistill" / "steps").is_dir()
    batch_files = sorted(
        f.parent.name for f in (out / ".fastdistill" / "steps").rglob("*.jsonl")
    )
    # only the step that is not deterministic records batches (load, tag and keep write none)
    assert len(set(batch_files)) == 1
    dataset = _lines(out / "dataset.jsonl")
    assert [r["tag"] for r in dataset[:2]] == ["ROW 0", "ROW 1"]
    assert sorted(r["id"] for r in _lines(out / "rejected.jsonl")) == [3, 13, 23, 33, 43, 53]


def test_resume_recomputes_deterministic_steps_and_replays_the_rest(tmp_path: Path) -> None:
    CALLS.seen.clear()
    out = tmp_path / "out"
    CALLS.fail_from = 40
    try:
        with pytest.raises(StepError):
            _pipeline(80).run(out, llm_cache=False)
    finally:
        CALLS.fail_from = -1
    counted_before = list(CALLS.seen.get("count", []))
    assert counted_before and max(counted_before) < 40
    CALLS.seen.clear()
    done = _pipeline(80).run(out, llm_cache=False)
    assert done.kept + done.rejected == 80
    # the deterministic step saw every row again; the checkpointed one only the new rows
    assert sorted(CALLS.seen["tag"]) == list(range(80))
    assert set(CALLS.seen["count"]).isdisjoint(counted_before)
    dataset = _lines(out / "dataset.jsonl")
    rejected = _lines(out / "rejected.jsonl")
    ids = sorted([r["id"] for r in dataset] + [r["id"] for r in rejected])
    assert ids == list(range(80))  # every input id exactly once
    assert all(r["tag"] == f"ROW {r['id']}" and r["n"] == len(r["tag"]) for r in dataset)
    assert {r["_rejection"]["reason"] for r in rejected} == {"rule_failed"}


class Forgetful(Step):
    inputs = ("text",)
    outputs = ("tag", "score")

    def process(self, rows: list[dict[str, Any]], ctx: Any) -> list[dict[str, Any]]:
        return [{**r, "tag": "x"} for r in rows]  # forgets "score"


def test_a_declared_output_column_no_row_has_is_reported(tmp_path: Path) -> None:
    rows = [{"id": i, "text": f"row {i}"} for i in range(30)]
    result = Pipeline(
        "forgetful", LoadFromDicts(data=rows, batch_size=10) >> Forgetful(name="forget")
    ).run(tmp_path / "out", llm_cache=False)
    warnings = result.quality["warnings"]
    assert len(warnings) == 1 and "'forget'" in warnings[0] and "score" in warnings[0]
    assert "tag" not in warnings[0].split("had them")[0].split("column(s)")[1]
    report = json.loads((tmp_path / "out" / "quality_report.json").read_text())
    assert report["warnings"] == warnings
