"""canonicalize, compute_hash and dedup_exact."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastdistill import ROW_ID, Reason
from fastdistill.testing import make_context, run_step
from pydantic import ValidationError

from fastdistill_steps.canonical import Canonicalize, ComputeHash, sample_id_for
from fastdistill_steps.dedup import DedupExact


def test_canonicalize_nfc_strip_collapse_lowercase() -> None:
    decomposed = "Cafe\u0301"  # 'e' + combining acute
    rows = [{ROW_ID: "g:0", "question": f"  How  many\n\t{decomposed}s? ", "db_id": " X ", "n": 1}]
    kept, rejected = run_step(Canonicalize(fields=["question", "db_id"], lowercase=["db_id"]), rows)
    assert rejected == []
    assert kept == [{ROW_ID: "g:0", "question": "How many Caf\u00e9s?", "db_id": "x", "n": 1}]


def test_canonicalize_can_keep_whitespace_runs() -> None:
    kept, _ = run_step(Canonicalize(fields=["q"], collapse_whitespace=False), [{"q": " a  b "}])
    assert kept == [{"q": "a  b"}]


@pytest.mark.parametrize("value, got", [(None, "NoneType"), (3, "int"), (["a"], "list")])
def test_canonicalize_rejects_non_strings_naming_field(value: object, got: str) -> None:
    rows = [{"q": "ok", "other": value}, {"q": "fine", "other": "yes"}]
    kept, rejected = run_step(Canonicalize(fields=["q", "other"]), rows)
    assert kept == [{"q": "fine", "other": "yes"}]
    [(row, rej)] = rejected
    assert rej.reason == Reason.INVALID_INPUT.value
    assert "'other'" in rej.detail and got in rej.detail
    assert row["other"] == value


def test_canonicalize_rejects_missing_field_and_bad_config() -> None:
    _, rejected = run_step(Canonicalize(fields=["q"]), [{"x": 1}])
    assert "'q'" in rejected[0][1].detail and "missing" in rejected[0][1].detail
    with pytest.raises(ValidationError, match="lowercase"):
        Canonicalize(fields=["q"], lowercase=["db_id"])


def test_compute_hash_is_stable_and_keeps_columns() -> None:
    step = ComputeHash(fields=["question", "db_id"], task_id="text2sql")
    rows = [{ROW_ID: "g:0", "question": "q", "db_id": "d"}, {"db_id": "d", "question": "q"}]
    kept, _ = run_step(step, rows)
    assert kept[0]["sample_id"] == kept[1]["sample_id"]
    assert len(kept[0]["sample_id"]) == 16 and int(kept[0]["sample_id"], 16) >= 0
    assert kept[0][ROW_ID] == "g:0" and kept[0]["question"] == "q"
    import hashlib

    expected = hashlib.sha256(b'text2sql{"db_id":"d","question":"q"}').hexdigest()[:16]
    assert kept[0]["sample_id"] == expected
    # field order in the config does not matter; task id and values do
    again, _ = run_step(ComputeHash(fields=["db_id", "question"], task_id="text2sql"), rows[:1])
    assert again[0]["sample_id"] == expected
    other_task, _ = run_step(ComputeHash(fields=["question", "db_id"]), rows[:1])
    assert other_task[0]["sample_id"] != expected


def test_compute_hash_same_in_another_process() -> None:
    values = {"question": "How many singers?", "n": [1, 2.5, None]}
    code = (
        "from fastdistill_steps.canonical import sample_id_for\n"
        f"print(sample_id_for('t', {values!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == sample_id_for("t", values)


def test_compute_hash_output_column_and_missing_field() -> None:
    step = ComputeHash(fields=["q"], output_column="uid")
    assert step.output_columns() == ["uid"] and step.input_columns() == ["q"]
    kept, rejected = run_step(step, [{"q": "a"}, {"x": "b"}])
    assert "uid" in kept[0] and "sample_id" not in kept[0]
    assert rejected[0][1].reason == Reason.INVALID_INPUT.value and "q" in rejected[0][1].detail


def test_dedup_exact_keeps_first_rejects_later() -> None:
    rows = [
        {ROW_ID: "g:0", "sample_id": "a"},
        {ROW_ID: "g:1", "sample_id": "b"},
        {ROW_ID: "g:2", "sample_id": "a"},
        {ROW_ID: "g:3", "sample_id": "a"},
    ]
    step = DedupExact()
    ctx = make_context("dedup")
    kept, rejected = run_step(step, rows, ctx)
    assert [r[ROW_ID] for r in kept] == ["g:0", "g:1"]
    assert [(r[ROW_ID], rej.reason) for r, rej in rejected] == [
        ("g:2", Reason.DUPLICATE.value),
        ("g:3", Reason.DUPLICATE.value),
    ]
    assert all("g:0" in rej.detail and "'a'" in rej.detail for _, rej in rejected)
    assert ctx.metrics.counters()["duplicates"] == 2


def test_dedup_exact_state_spans_batches_and_resets_on_load() -> None:
    step = DedupExact(key="k")
    ctx = make_context()
    step.load(ctx)
    assert len(list(step.process([{"k": 1}, {"k": [1, 2]}], ctx))) == 2
    assert list(step.process([{"k": 1}, {"k": [1, 2]}, {"k": "1"}], ctx)) == [{"k": "1"}]
    assert len(ctx.drain_rejections()) == 2
    step.load(ctx)  # a new run starts empty
    assert list(step.process([{"k": 1}], ctx)) == [{"k": 1}]


def test_dedup_exact_missing_key_rejected() -> None:
    _, rejected = run_step(DedupExact(), [{"x": 1}])
    assert rejected[0][1].reason == Reason.INVALID_INPUT.value
