"""export_jsonl and export_chat."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fastdistill import ROW_ID, Reason
from fastdistill.testing import make_context, run_step
from pydantic import ValidationError

from fastdistill_steps.export import ExportChat, ExportJsonl, is_valid_split


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_export_jsonl_sorted_without_private_columns(tmp_path: Path) -> None:
    rows = [
        {ROW_ID: "g:0", "sample_id": "b", "sql": "SELECT 2", "q": "two"},
        {ROW_ID: "g:1", "sample_id": "a", "sql": "SELECT 1", "q": "one"},
    ]
    ctx = make_context("export", root=tmp_path)
    kept, rejected = run_step(ExportJsonl(), rows, ctx)
    assert kept == rows and rejected == []
    written = _read_jsonl(tmp_path / "export" / "dataset.jsonl")
    assert written == [
        {"sample_id": "a", "sql": "SELECT 1", "q": "one"},
        {"sample_id": "b", "sql": "SELECT 2", "q": "two"},
    ]
    assert ctx.metrics.counters()["written"] == 2


def test_export_jsonl_columns_and_path(tmp_path: Path) -> None:
    rows = [{"sql": "SELECT 1", "q": "one", "x": 1}, {"sql": "SELECT 2", "q": "two"}]
    step = ExportJsonl(path="out/d.jsonl", columns=["q", "sql"])
    assert step.input_columns() == ["q", "sql"]
    run_step(step, rows, make_context(root=tmp_path))
    lines = (tmp_path / "out" / "d.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines == ['{"q": "one", "sql": "SELECT 1"}', '{"q": "two", "sql": "SELECT 2"}']


def _chat_rows(n: int) -> list[dict]:
    return [
        {ROW_ID: f"g:{i}", "sample_id": f"{i:04x}", "question": f"q{i}", "db_id": "d", "sql": f"SELECT {i}"}
        for i in range(n)
    ]


def test_export_chat_format(tmp_path: Path) -> None:
    step = ExportChat(system_prompt="You write SQLite.", user_template="[{db_id}] {question}",
                      valid_fraction=0.0)
    ctx = make_context(root=tmp_path)
    kept, rejected = run_step(step, _chat_rows(3), ctx)
    assert rejected == [] and len(kept) == 3
    train = _read_jsonl(tmp_path / "mlx" / "train.jsonl")
    assert (tmp_path / "mlx" / "valid.jsonl").read_text() == ""
    assert train[0] == {
        "messages": [
            {"role": "system", "content": "You write SQLite."},
            {"role": "user", "content": "[d] q0"},
            {"role": "assistant", "content": "SELECT 0"},
        ]
    }
    assert ctx.metrics.counters() == {"train": 3, "valid": 0}
    assert step.input_columns() == ["db_id", "question", "sql", "sample_id"]


def test_export_chat_split_is_deterministic(tmp_path: Path) -> None:
    rows = _chat_rows(200)
    shuffled = list(rows)
    random.Random(7).shuffle(shuffled)
    outputs = []
    for i, batch in enumerate((rows, shuffled)):
        root = tmp_path / f"run{i}"
        ctx = make_context(root=root)
        run_step(ExportChat(dir="chat", valid_fraction=0.25), batch, ctx)
        outputs.append(
            ((root / "chat" / "train.jsonl").read_bytes(), (root / "chat" / "valid.jsonl").read_bytes())
        )
        counters = ctx.metrics.counters()
        assert counters["train"] + counters["valid"] == 200
        assert 20 < counters["valid"] < 80
    assert outputs[0] == outputs[1]
    valid_users = {m["messages"][0]["content"] for m in map(json.loads, outputs[0][1].splitlines())}
    expected = {r["question"] for r in rows if is_valid_split(r["sample_id"], 0.25)}
    assert valid_users == expected
    # the documented rule
    import hashlib

    sid = rows[0]["sample_id"]
    bucket = int(hashlib.sha256(sid.encode()).hexdigest()[:8], 16) / 2**32
    assert is_valid_split(sid, 0.25) == (bucket < 0.25)


def test_export_chat_rejects_unrenderable_rows(tmp_path: Path) -> None:
    rows = _chat_rows(4)
    del rows[1]["question"]
    rows[2]["sql"] = None
    del rows[3]["sample_id"]
    kept, rejected = run_step(ExportChat(valid_fraction=0.0), rows, make_context(root=tmp_path))
    assert kept == [rows[0]]
    assert [rej.reason for _, rej in rejected] == [Reason.INVALID_INPUT.value] * 3
    assert any("question" in rej.detail for _, rej in rejected)
    assert len(_read_jsonl(tmp_path / "mlx" / "train.jsonl")) == 1


def test_export_chat_validates_config() -> None:
    with pytest.raises(ValidationError):
        ExportChat(valid_fraction=1.5)
    with pytest.raises(ValidationError, match="format string"):
        ExportChat(user_template="{question")


def test_exports_match_the_dataset_of_every_run_also_a_resumed_one(tmp_path: Path) -> None:
    from fastdistill import Pipeline
    from fastdistill.builtins.steps import LoadFromDicts

    data = [{"sample_id": f"s{i}", "question": f"q{i}", "sql": f"SELECT {i}"} for i in range(16)]
    pipe = Pipeline("exports", LoadFromDicts(data=data)
                    >> ExportJsonl(name="jsonl") >> ExportChat(name="chat", valid_fraction=0.25))
    out = tmp_path / "out"
    for limit in (8, 16, 4, 12):  # the later runs replay checkpointed rows of the earlier ones
        result = pipe.run(out, limit=limit)
        assert result.kept == limit
        chat = _read_jsonl(out / "mlx" / "train.jsonl") + _read_jsonl(out / "mlx" / "valid.jsonl")
        assert sorted(m["messages"][-1]["content"] for m in chat) == sorted(
            f"SELECT {i}" for i in range(limit))
        assert len(_read_jsonl(out / "export" / "dataset.jsonl")) == limit
