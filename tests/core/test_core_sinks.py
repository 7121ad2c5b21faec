"""Output sinks write rows sorted by row id with bounded memory (sorted runs + merge)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fastdistill.engine import collect
from fastdistill.engine.checkpoint import StepCheckpoint
from fastdistill.rows import ROW_ID, Rejection
from fastdistill.storage import StorageBackend


@pytest.mark.parametrize("shuffle", [False, True])
def test_sink_sorts_by_row_id_across_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           shuffle: bool) -> None:
    monkeypatch.setattr(collect, "RUN_ROWS", 7)  # many small runs
    ids = list(range(200))
    if shuffle:
        random.Random(3).shuffle(ids)
    sink = collect.RowSink(StorageBackend(str(tmp_path)), "dataset.jsonl", keep_private=False)
    for i in range(0, len(ids), 5):
        sink.add([{ROW_ID: f"load:{j}", "id": j, "text": "a\nb é"} for j in ids[i:i + 5]])
    rows = [json.loads(x) for x in Path(sink.finalize()).read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(200))
    assert all(ROW_ID not in r and r["text"] == "a\nb é" for r in rows)
    assert not list((tmp_path / ".spool").rglob("*.run*"))  # spool files removed


def test_empty_sink_writes_an_empty_file(tmp_path: Path) -> None:
    sink = collect.RejectedSink(StorageBackend(str(tmp_path)))
    assert Path(sink.finalize()).read_text() == ""


def test_checkpoint_group_commit_and_columnar_replay(tmp_path: Path) -> None:
    storage = StorageBackend(str(tmp_path))
    ck = StepCheckpoint(storage, "sig", "step", window_s=3600, max_rows=10_000)
    sources = {f"g:{i}": {ROW_ID: f"g:{i}", "id": i, "text": "x", "gone": 1} for i in range(20)}
    kept = [{ROW_ID: f"g:{i}", "id": i, "text": "x", "new": i * 2} for i in range(20) if i != 3]
    kept[5] = {**kept[5], "text": "changed"}  # a row shaped differently: stored on its own
    rejected = [({**sources["g:3"]}, Rejection("rule_failed", "step", "no"))]
    ck.record(kept, rejected, sources)
    assert not ck.due() and not storage.listdir(ck.rel)  # buffered, not yet committed
    ck.mark_done({"limit": None})
    assert len([n for n in storage.listdir(ck.rel) if n.endswith(".jsonl")]) == 1
    replay = StepCheckpoint(storage, "sig", "step").load()
    assert len(replay) == 20 and replay.done == {"limit": None}
    for i in range(20):
        got, rej = replay.outcome(f"g:{i}", sources[f"g:{i}"])
        if i == 3:
            assert got == [] and rej is not None and rej[1].reason == "rule_failed"
        else:
            want = next(r for r in kept if r["id"] == i)
            assert got == [want] and rej is None
