"""chat_generation, llm_judge, self_instruct, evol_instruct: scripted, in a pipeline, for real."""

from __future__ import annotations

import json

import pytest
from fastdistill import Generation, Pipeline, Registry
from fastdistill.builtins.steps import LoadFromDicts
from fastdistill.testing import ScriptedLLM, make_context, run_step
from fastdistill_llms.chat_generation import ChatGeneration
from fastdistill_llms.embedded import EmbeddedLLM
from fastdistill_llms.judge import LLMJudge, parse_judgment
from fastdistill_llms.synthetic import (
    EVOLUTIONS,
    EvolInstruct,
    SelfInstruct,
    parse_instruction_list,
)
from fastdistill_llms.text_generation import TextGeneration
from llms_fakes import NEEDS_MODEL_REASON, model_available


def scripted(answer) -> ScriptedLLM:
    return ScriptedLLM(script=answer if callable(answer) else (lambda m: answer))


# ---------------------------------------------------------------- chat_generation
def test_chat_generation_continues_each_conversation():
    seen = []

    def script(messages):
        seen.append(messages)
        return f"reply to {messages[-1]['content']}"

    convo = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "how are you?"},
    ]
    task = ChatGeneration(llm=scripted(script), system_prompt="be kind", add_to_conversation=True)
    kept, rejected = run_step(task, [{"id": 0, "messages": convo}])
    assert rejected == []
    assert kept[0]["generation"] == "reply to how are you?"
    assert seen[0][0] == {"role": "system", "content": "be kind"} and seen[0][1:] == convo
    assert kept[0]["conversation"][-1] == {"role": "assistant", "content": kept[0]["generation"]}
    assert task.input_columns() == ["messages"]
    assert task.output_columns() == ["generation", "conversation", "generation_meta"]


def test_chat_generation_keeps_the_rows_own_system_turn():
    seen = []
    task = ChatGeneration(llm=scripted(lambda m: seen.append(m) or "ok"), system_prompt="default")
    convo = [{"role": "system", "content": "mine"}, {"role": "user", "content": "q"}]
    run_step(task, [{"messages": convo}])
    assert seen[0] == convo


@pytest.mark.parametrize(
    ("messages", "detail"),
    [
        ([], "non-empty"),
        ("hello", "non-empty list"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "last turn"),
        ([{"role": "robot", "content": "a"}], "role"),
        ([{"role": "user", "content": 3}], "content"),
        (
            [
                {"role": "user", "content": "a"},
                {"role": "system", "content": "s"},
                {"role": "user", "content": "b"},
            ],
            "system turn",
        ),
    ],
)
def test_a_malformed_conversation_rejects_only_its_row(messages, detail):
    llm = scripted("ok")
    kept, rejected = run_step(
        ChatGeneration(llm=llm),
        [
            {"id": 0, "messages": messages},
            {"id": 1, "messages": [{"role": "user", "content": "fine"}]},
        ],
    )
    assert [r["id"] for r in kept] == [1]
    [(row, rej)] = rejected
    assert rej.reason == "invalid_input" and detail in rej.detail
    assert row["generation"] is None and set(row["generation_meta"]) == set(
        kept[0]["generation_meta"]
    )
    assert llm.calls == 1


def test_chat_generation_provider_error_is_that_rows_reason():
    def script(messages):
        if messages[-1]["content"] == "bad":
            return Generation(text=None, model="m", error_kind="timeout", error="slow")
        return "ok"

    rows = [{"messages": [{"role": "user", "content": c}]} for c in ("good", "bad")]
    kept, rejected = run_step(ChatGeneration(llm=scripted(script)), rows)
    assert len(kept) == 1 and rejected[0][1].reason == "timeout"


# ---------------------------------------------------------------- judge parsing
@pytest.mark.parametrize(
    ("text", "score", "rationale"),
    [
        ('{"rationale": "Correct and clear.", "score": 8}', 8, "Correct and clear."),
        ('```json\n{"score": "7", "reason": "ok"}\n```', 7, "ok"),
        ('Here is my verdict: {"Rating": 6.5, "explanation": "partly"} Thanks.', 6.5, "partly"),
        ('{"score": "9/10", "rationale": "x"}', 9, "x"),
        ("Score: 7/10", 7, ""),
        ("The answer is right but terse.\nScore: 7/10", 7, "The answer is right but terse"),
        ("**Score:** 9\nGreat answer.", 9, "Great answer"),
        ("Rating - 3", 3, ""),
        (
            "I would give it 4 out of 10 because it is vague.",
            4,
            "I would give it because it is vague",
        ),
        ("6", 6, ""),
        ("10.\nPerfect.", 10, "Perfect."),
        ("final score = 2", 2, "final"),
    ],
)
def test_parse_judgment_accepts_the_shapes_models_produce(text, score, rationale):
    assert parse_judgment(text, 1, 10) == (score, rationale)


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("It is a fine answer.", "no score"),
        ("Score: 4/5", "not on the 1-10 scale"),
        ("Score: 11", "outside 1-10"),
        ("0", "outside"),
        ('{"score": "high", "rationale": "x"}', "non-numeric"),
        ("", "no score"),
    ],
)
def test_unparseable_or_out_of_range_judgments_are_invalid_output(text, detail):
    from fastdistill_llms._task import InvalidOutput

    with pytest.raises(InvalidOutput, match=detail):
        parse_judgment(text, 1, 10)


# ---------------------------------------------------------------- judge task
JUDGE_ROWS = [{"id": i, "instruction": f"task {i}", "generation": f"answer {i}"} for i in range(5)]
VERDICTS = {
    "answer 0": '{"score": 9, "rationale": "great"}',
    "answer 1": "Score: 4/10 - too short",
    "answer 2": "no idea",
    "answer 3": "7",
    "answer 4": "Score: 15",
}


def judge_script(messages):
    user = messages[-1]["content"]
    return next(v for k, v in VERDICTS.items() if k in user)


def test_judge_scores_rows_and_rejects_unparseable_answers():
    ctx = make_context("judge")
    task = LLMJudge(llm=scripted(judge_script), rubric="Be harsh.")
    kept, rejected = run_step(task, JUDGE_ROWS, ctx)
    assert {r["id"]: r["score"] for r in kept} == {0: 9, 1: 4, 3: 7}
    assert kept[0]["rationale"] == "great" and kept[1]["rationale"] == "too short"
    assert {r["id"]: j.reason for r, j in rejected} == {2: "invalid_output", 4: "invalid_output"}
    for row, _ in rejected:
        assert row["score"] is None and row["judge_meta"]["error_kind"] == "invalid_output"
    assert "generation_meta" not in kept[0]  # the judge does not overwrite the teacher's meta
    stats = LLMJudge.summarize_metrics(ctx.metrics.counters())
    assert stats == {
        "judged": 3,
        "score_mean": pytest.approx(20 / 3, abs=1e-5),
        "score_min": 4.0,
        "score_max": 9.0,
    }


def test_judge_system_prompt_carries_rubric_and_scale():
    seen = []
    task = LLMJudge(
        llm=scripted(lambda m: seen.append(m) or "3"),
        rubric="Only facts.",
        scale_min=0,
        scale_max=5,
        template="{answer}",
    )
    kept, _ = run_step(task, [{"answer": "x"}])
    system = seen[0][0]["content"]
    assert "Only facts." in system and "from 0 (worst) to 5 (best)" in system
    assert kept[0]["score"] == 3 and task.input_columns() == ["answer"]
    with pytest.raises(ValueError):
        LLMJudge(llm=scripted("1"), scale_min=5, scale_max=1)
    with pytest.raises(ValueError):
        LLMJudge(llm=scripted("1"), threshold=20)


def test_judge_threshold_gates_and_the_quality_report_has_score_stats(tmp_path):
    """A pipeline: teacher (text_generation) >> judge with threshold; the report shows stats."""
    teacher = TextGeneration(
        name="teacher",
        llm=scripted(lambda m: "answer " + m[-1]["content"][-1]),
        template="{instruction}",
    )
    judge = LLMJudge(name="judge", llm=scripted(judge_script), threshold=5)
    rows = [{"id": i, "instruction": f"task {i}"} for i in range(5)]
    pipe = Pipeline("judged", LoadFromDicts(name="load", data=rows) >> teacher >> judge)
    result = pipe.run(tmp_path / "out", registry=Registry())
    assert result.kept == 2  # 9 and 7; 4 is low_score; 2 and 4 are invalid_output
    quality = json.loads((tmp_path / "out" / "quality_report.json").read_text())
    assert quality["reject_reasons"] == {"invalid_output": 2, "low_score": 1}
    gate = quality["gates"]["judge"]
    assert gate["judged"] == 3 and gate["score_min"] == 4 and gate["score_max"] == 9
    assert gate["score_mean"] == pytest.approx(20 / 3, abs=1e-5)
    assert gate["below_threshold"] == 1
    rejected = [json.loads(x) for x in (tmp_path / "out/rejected.jsonl").read_text().splitlines()]
    low = next(r for r in rejected if r["_rejection"]["reason"] == "low_score")
    assert low["score"] == 4 and low["rationale"] == "too short"  # a gated row keeps its score
    assert set(low["judge_meta"]) == set(low["generation_meta"])


# ---------------------------------------------------------------- self_instruct
def test_self_instruct_parses_a_numbered_list_without_echoes_or_duplicates():
    answer = (
        "1. Write a haiku about autumn leaves.\n"
        "2) Explain how a bicycle gear works.\n"
        "- Explain how a bicycle gear works!\n"
        "3. Summarise the plot of Hamlet in two sentences.\n"
        "4. Name three uses of vinegar at home.\n"
        "short\n"
    )
    seen = []
    task = SelfInstruct(llm=scripted(lambda m: seen.append(m) or answer), num_instructions=3)
    kept, rejected = run_step(
        task, [{"instruction": "Summarise the plot of Hamlet in two sentences."}]
    )
    assert rejected == []
    assert kept[0]["instructions"] == [
        "Write a haiku about autumn leaves.",
        "Explain how a bicycle gear works.",
        "Name three uses of vinegar at home.",
    ]
    assert "write 3 new instructions" in seen[0][0]["content"]
    assert "Summarise the plot of Hamlet" in seen[0][1]["content"]


def test_self_instruct_with_nothing_usable_is_invalid_output():
    kept, rejected = run_step(
        SelfInstruct(llm=scripted("Sure!\n1. ok")), [{"instruction": "Write a poem about rain."}]
    )
    assert kept == [] and rejected[0][1].reason == "invalid_output"
    assert rejected[0][0]["instructions"] is None
    assert parse_instruction_list("Instruction 1: Draw a map of Rome", "x", 5, 5) == [
        "Draw a map of Rome"
    ]


# ---------------------------------------------------------------- evol_instruct
def test_evol_instruct_picks_a_stable_method_per_row_and_cleans_the_answer():
    seen = []
    task = EvolInstruct(
        llm=scripted(
            lambda m: (
                seen.append(m) or 'Rewritten instruction: "Sort a list of 1e6 ints in O(n log n)."'
            )
        ),
    )
    rows = [{"instruction": "Sort a list."}]
    kept, rejected = run_step(task, rows)
    assert rejected == []
    assert kept[0]["evolved_instruction"] == "Sort a list of 1e6 ints in O(n log n)."
    method = kept[0]["evolution_method"]
    assert method in EVOLUTIONS and EVOLUTIONS[method] in seen[0][-1]["content"]
    assert task.method_for("Sort a list.") == method  # deterministic
    methods = {
        EvolInstruct(llm=scripted("x"), seed=s).method_for("Sort a list.") for s in range(20)
    }
    assert len(methods) > 1  # the seed changes the choice
    with pytest.raises(ValueError, match="unknown"):
        EvolInstruct(llm=scripted("x"), methods=["make_it_rhyme"])


@pytest.mark.parametrize(
    ("answer", "reason", "detail"),
    [
        ("Sort a list", "invalid_output", "repeats"),
        ("Operation: deepen. Sort it.", "invalid_output", "scaffolding"),
        ("Rewritten instruction:", "invalid_output", "empty once its label"),
        ("  ", "empty_output", "empty completion"),
    ],
)
def test_evol_instruct_rejects_echoes_and_leaks(answer, reason, detail):
    kept, rejected = run_step(EvolInstruct(llm=scripted(answer)), [{"instruction": "Sort a list."}])
    assert kept == []
    [(row, rej)] = rejected
    assert rej.reason == reason and detail in rej.detail
    assert row["evolved_instruction"] is None and row["evolution_method"] is None


# ---------------------------------------------------------------- the real model (tiny)
@pytest.fixture(scope="module")
def tiny_llm():
    if not model_available():
        pytest.skip(NEEDS_MODEL_REASON)
    llm = EmbeddedLLM(n_threads=1, n_ctx=1024, n_parallel=1, generation_kwargs={"max_tokens": 24})
    llm.load()
    yield llm
    llm.unload()


@pytest.mark.model
def test_tasks_with_the_real_embedded_model(tiny_llm):
    ctx = make_context("tasks")
    chat = ChatGeneration(llm=tiny_llm, reject_truncated=False)
    kept, rejected = run_step(chat, [{"messages": [{"role": "user", "content": "Say hi."}]}], ctx)
    assert rejected == [] and kept[0]["generation"].strip()
    tiny_llm.load()
    judge = LLMJudge(llm=tiny_llm, reject_truncated=False)
    kept, rejected = run_step(judge, [{"instruction": "What is 2+2?", "generation": "4"}])
    # a 135M model may not follow the format: either a score in range or a precise rejection
    if kept:
        assert 1 <= kept[0]["score"] <= 10
    else:
        assert rejected[0][1].reason in {"invalid_output", "length"}
        assert rejected[0][0]["judge_meta"]["completion_tokens"] > 0
    tiny_llm.load()
    evol = EvolInstruct(llm=tiny_llm, reject_truncated=False)
    kept, rejected = run_step(evol, [{"instruction": "Write a poem about rain."}])
    assert len(kept) + len(rejected) == 1
    for row in kept:
        assert row["evolved_instruction"] and row["evolution_method"] in EVOLUTIONS
    tiny_llm.load()
