"""text_generation with ScriptedLLM: success, typed failure reasons, metadata shape (C02, C12)."""

from __future__ import annotations

import asyncio
import copy
import logging

import pytest
from fastdistill import Generation, Reason
from fastdistill.models import GENERATION_META_KEYS
from fastdistill.testing import ScriptedLLM, make_context, run_step
from fastdistill_llms.text_generation import TextGeneration, template_columns

ROWS = [{"id": i, "question": f"q{i}", "schema": "t(a)"} for i in range(3)]


def task(script, **kw) -> TextGeneration:
    return TextGeneration(llm=ScriptedLLM(script=script), template="S:{schema} Q:{question}", **kw)


def test_success_adds_generation_and_meta_from_the_template():
    seen = []

    def script(messages):
        seen.append(messages)
        return "SELECT " + messages[-1]["content"]

    t = task(script, system_prompt="be brief")
    kept, rejected = run_step(t, ROWS)
    assert rejected == []
    assert [r["generation"] for r in kept] == [f"SELECT S:t(a) Q:q{i}" for i in range(3)]
    assert seen[0] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "S:t(a) Q:q0"},
    ]
    meta = kept[0]["generation_meta"]
    assert tuple(meta) == GENERATION_META_KEYS
    assert meta["model"] == "scripted" and meta["error_kind"] is None
    assert meta["completion_tokens"] == len(kept[0]["generation"])


def test_input_and_output_columns():
    t = TextGeneration(
        llm=ScriptedLLM(),
        template="{schema}\n{question} {question.x} {q[0]} {{lit}}",
        output_column="sql",
        meta_column="sql_meta",
    )
    assert t.input_columns() == ["schema", "question", "q"]
    assert t.output_columns() == ["sql", "sql_meta"]
    assert template_columns("no fields {{here}}") == []


@pytest.mark.parametrize("template", ["{}", "Q: {0}", "{:>5}"])
def test_positional_template_fields_are_rejected_at_construction(template):
    with pytest.raises(ValueError, match="positional"):
        TextGeneration(llm=ScriptedLLM(), template=template)


def test_missing_column_rejects_only_that_row_with_invalid_input():
    llm = ScriptedLLM()
    t = TextGeneration(llm=llm, template="Q:{question}")
    kept, rejected = run_step(
        t, [{"id": 0, "question": "a"}, {"id": 1}, {"id": 2, "question": "c"}]
    )
    assert [r["id"] for r in kept] == [0, 2]
    [(row, rej)] = rejected
    assert row["id"] == 1 and rej.reason == "invalid_input" and "question" in rej.detail
    assert row["generation"] is None and tuple(row["generation_meta"]) == GENERATION_META_KEYS
    assert llm.calls == 2  # the bad row never reached the model


@pytest.mark.parametrize(
    ("error_kind", "reason"),
    [
        ("provider_error", Reason.PROVIDER_ERROR),
        ("timeout", Reason.TIMEOUT),
        ("empty_output", Reason.EMPTY_OUTPUT),
        ("length", Reason.LENGTH),
    ],
)
def test_generation_error_kind_becomes_the_reject_reason(error_kind, reason):
    def script(messages):
        if "q1" in messages[-1]["content"]:
            return Generation(text=None, model="m", error_kind=error_kind, error="boom")
        return "fine"

    kept, rejected = run_step(task(script), ROWS)
    assert [r["id"] for r in kept] == [0, 2]
    [(row, rej)] = rejected
    assert rej.reason == reason.value and rej.detail == "boom"
    assert row["generation"] is None
    assert row["generation_meta"]["error_kind"] == error_kind


def test_meta_keys_identical_for_kept_and_rejected_rows_c02():
    def script(messages):
        if "q1" in messages[-1]["content"]:
            raise RuntimeError("provider exploded")
        return "ok"

    kept, rejected = run_step(task(script), ROWS)
    assert len(kept) == 2 and len(rejected) == 1
    keys = {tuple(r["generation_meta"]) for r in kept} | {
        tuple(r["generation_meta"]) for r, _ in rejected
    }
    assert keys == {GENERATION_META_KEYS}
    # same columns on both sides, so a columnar writer sees one schema
    assert set(kept[0]) == set(rejected[0][0])


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (asyncio.TimeoutError(), "timeout"),
        (TimeoutError("read"), "timeout"),
        (type("ReadTimeout", (Exception,), {})("slow"), "timeout"),
        (ConnectionError("refused"), "provider_error"),
        (ValueError("bad json"), "provider_error"),
    ],
)
def test_exception_in_agenerate_rejects_only_that_row_c12(exc, reason, caplog):
    def script(messages):
        if "q1" in messages[-1]["content"]:
            raise exc
        return "ok"

    with caplog.at_level(logging.WARNING):
        kept, rejected = run_step(task(script), ROWS)
    assert [r["generation"] for r in kept] == ["ok", "ok"]
    [(row, rej)] = rejected
    assert rej.reason == reason
    assert type(exc).__name__ in rej.detail
    assert row["generation"] is None and row["generation_meta"]["error_kind"] == reason
    assert type(exc).__name__ in caplog.text  # the log names the original exception type


def test_truncated_answer_is_rejected_length_unless_disabled():
    def script(messages):
        return Generation(
            text="SELECT * FR", model="m", finish_reason="length", usage={"completion_tokens": 4}
        )

    kept, rejected = run_step(task(script), ROWS[:1])
    assert kept == [] and rejected[0][1].reason == "length"
    assert rejected[0][0]["generation_meta"]["error_kind"] == "length"
    kept, rejected = run_step(task(script, reject_truncated=False), ROWS[:1])
    assert [r["generation"] for r in kept] == ["SELECT * FR"] and rejected == []


def test_blank_text_without_error_kind_is_empty_output():
    kept, rejected = run_step(task(lambda m: "   "), ROWS[:1])
    assert kept == [] and rejected[0][1].reason == "empty_output"


def test_metrics_count_requests_ok_and_tokens():
    ctx = make_context("teacher")

    def script(messages):
        if "q2" in messages[-1]["content"]:
            return Generation(text=None, model="m", error_kind="provider_error", error="x")
        return "abcd"

    run_step(task(script), ROWS, ctx)
    counters = ctx.metrics.counters()
    assert counters["requests"] == 3 and counters["ok"] == 2
    assert counters["rejected.provider_error"] == 1
    obs = ctx.metrics.observations()
    assert obs["completion_tokens"] == [4.0, 4.0]
    assert len(obs["latency_s"]) == 3


def test_load_and_unload_reach_the_llm():
    events = []

    class Tracked(ScriptedLLM):
        def load(self):
            events.append("load")

        def unload(self):
            events.append("unload")

    run_step(TextGeneration(llm=Tracked(), template="{question}"), ROWS[:1])
    assert events == ["load", "unload"]


def test_task_deepcopies_for_replicas():
    t = task(lambda m: "ok")
    clone = copy.deepcopy(t)
    assert clone.template == t.template and clone.llm is not t.llm


def test_few_shot_turns_go_between_system_and_user():
    seen = []

    def script(messages):
        seen.append(list(messages))
        return "SELECT 1"

    task = TextGeneration(
        llm=ScriptedLLM(script=script),
        system_prompt="sys",
        few_shot=[{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}],
        template="Q: {q}",
    )
    kept, rejected = run_step(task, [{"q": "why", "_row_id": "g:0"}])
    assert not rejected and kept[0]["generation"] == "SELECT 1"
    assert [m["role"] for m in seen[0]] == ["system", "user", "assistant", "user"]
    assert seen[0][1]["content"] == "q1" and seen[0][3]["content"] == "Q: why"


def test_few_shot_with_a_bad_role_is_rejected_at_construction():
    with pytest.raises(ValueError, match="few_shot\\[0\\]"):
        TextGeneration(
            llm=ScriptedLLM(), template="{q}", few_shot=[{"role": "system", "content": "x"}]
        )
