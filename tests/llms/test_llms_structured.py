"""Structured output (case C08) and request budgets (rpm/tpm) of the model adapters."""

from __future__ import annotations

import asyncio
import json
from typing import List, Literal, Optional, Union  # noqa: UP035 - the case's own spelling

import pytest
from fastdistill import Pipeline, Registry
from fastdistill.builtins.steps import LoadFromDicts
from fastdistill.testing import run_step
from fastdistill_llms._ratelimit import RateBudget, TokenBucket, estimate_tokens
from fastdistill_llms.embedded import EmbeddedLLM
from fastdistill_llms.openai_compat import OpenAICompatLLM
from fastdistill_llms.structured import OutputValidator, SchemaError, type_from_schema
from fastdistill_llms.text_generation import TextGeneration
from llms_fakes import NEEDS_MODEL_REASON, model_available, ok_reply
from pydantic import BaseModel, Field, TypeAdapter, ValidationError


class Text(BaseModel):
    type: Literal["text"] = "text"
    text: str = Field(min_length=1)


class Code(BaseModel):
    language: Literal["python", "sql"]
    source: str


class Ref(BaseModel):
    url: str
    weight: float = Field(default=1.0, ge=0, le=1)


class QA(BaseModel):
    kind: Literal["q", "a"]
    body: Union[Text, Code]  # noqa: UP007
    refs: List[Ref]  # noqa: UP006
    note: Optional[str] = None  # noqa: UP045


VALID = [
    {"kind": "q", "body": {"text": "why?"}, "refs": []},
    {"kind": "a", "body": {"language": "sql", "source": "SELECT 1"}, "refs": [{"url": "u"}]},
    {"kind": "a", "body": {"type": "text", "text": "x"}, "refs": [{"url": "u", "weight": 0.5}]},
    {"kind": "q", "body": {"text": "x"}, "refs": [], "note": None, "extra": 1},
    {"kind": "q", "body": {"text": "x"}, "refs": [{"url": "u", "weight": "0.25"}]},
]
INVALID = [
    {"kind": "x", "body": {"text": "hi"}, "refs": []},
    {"kind": "q", "body": {"text": ""}, "refs": []},
    {"kind": "q", "body": {"language": "c", "source": "x"}, "refs": []},
    {"kind": "q", "body": {"type": "code", "text": "x"}, "refs": []},
    {"kind": "q", "body": {"text": "hi"}, "refs": [{"url": "u", "weight": 2}]},
    {"kind": "q", "body": {"text": "hi"}},
    {"kind": "q", "body": {"text": "hi"}, "refs": [{}]},
    {"kind": "q", "body": {"text": "hi"}, "refs": "none"},
    {"kind": "q", "body": {"text": "hi"}, "refs": [], "note": 3},
    [],
    "QA",
    None,
]


def _accepts(adapter: TypeAdapter, obj) -> bool:
    try:
        adapter.validate_python(obj)
    except ValidationError:
        return False
    return True


def llm_for(fake, **kw) -> OpenAICompatLLM:
    kw.setdefault("api_key_env", None)
    kw.setdefault("backoff_base_s", 0.01)
    return OpenAICompatLLM(base_url=fake.base_url, model="m", **kw)


# ---------------------------------------------------------------- C08
def test_c08_schema_survives_document_round_trip_and_validates_like_the_model(
    fake_openai, tmp_path
):
    answer = VALID[1]
    fake_openai.script = lambda body, seen: ok_reply(json.dumps(answer))
    teacher = TextGeneration(
        name="teacher", llm=llm_for(fake_openai, structured_output=QA), template="Q: {q}"
    )
    pipe = Pipeline("c08", LoadFromDicts(name="load", data=[{"q": "one"}]) >> teacher)
    registry = Registry()
    path = pipe.save(tmp_path / "pipeline.yaml", registry)
    assert "$defs" in path.read_text()  # stored as JSON schema, not as an import path
    loaded = Pipeline.load(path, registry)
    llm = loaded.steps["teacher"].llm
    assert isinstance(llm, OpenAICompatLLM)
    assert llm.structured_output == QA.model_json_schema()

    original = TypeAdapter(QA)
    rebuilt = OutputValidator(llm.structured_output)
    for obj in VALID + INVALID:
        assert rebuilt.accepts(obj) == _accepts(original, obj), obj
    assert all(rebuilt.accepts(o) for o in VALID) and not any(rebuilt.accepts(o) for o in INVALID)

    result = loaded.run(tmp_path / "out", registry=registry)
    assert result.kept == 1
    [row] = [json.loads(x) for x in (tmp_path / "out/dataset.jsonl").read_text().splitlines()]
    assert row["parsed"] == QA.model_validate(answer).model_dump(mode="json")
    assert json.loads(row["generation"]) == answer
    [body] = fake_openai.requests
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "QA"
    assert fmt["json_schema"]["schema"] == QA.model_json_schema()


@pytest.mark.parametrize(
    ("reply", "finish", "reason", "detail"),
    [
        ('{"kind": "q", "body": {"text": "x"}, "refs": [', "stop", "invalid_output", "JSON"),
        ('{"kind": "z", "body": {"text": "x"}, "refs": []}', "stop", "invalid_output", "kind"),
        ('{"kind": "q", "body": {"text": "x"}, "re', "length", "length", "token limit"),
    ],
)
def test_an_answer_that_does_not_match_is_rejected_not_retried(
    fake_openai, reply, finish, reason, detail
):
    fake_openai.script = lambda body, seen: ok_reply(reply, finish_reason=finish)
    task = TextGeneration(
        llm=llm_for(fake_openai, structured_output=QA), template="{q}", reject_truncated=False
    )
    kept, rejected = run_step(task, [{"q": "x"}])
    assert kept == [] and len(fake_openai.requests) == 1
    [(row, rej)] = rejected
    assert rej.reason == reason and detail in rej.detail
    assert row["generation"] is None and row["parsed"] is None  # same columns as kept rows (C02)
    assert row["generation_meta"]["error_kind"] == reason


def test_direct_call_gets_parsed_object_and_fenced_json_is_accepted(fake_openai):
    fake_openai.script = lambda body, seen: ok_reply("```json\n" + json.dumps(VALID[0]) + "\n```")
    [gen] = llm_for(fake_openai, structured_output=QA).generate(
        [[{"role": "user", "content": "x"}]]
    )
    assert gen.ok and gen.parsed["kind"] == "q" and gen.parsed["body"]["text"] == "why?"


def test_llamacpp_mode_sends_json_schema_field(fake_openai):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fake_openai.script = lambda body, seen: ok_reply('{"n": 3}')
    llm = llm_for(fake_openai, structured_output=schema, structured_output_mode="json_schema")
    [gen] = llm.generate([[{"role": "user", "content": "x"}]])
    assert gen.parsed == {"n": 3}
    assert fake_openai.requests[0]["json_schema"] == schema
    assert "response_format" not in fake_openai.requests[0]


def test_schema_is_part_of_the_identity_and_bad_schemas_fail_at_construction():
    a = OpenAICompatLLM(model="m", structured_output=QA)
    b = OpenAICompatLLM(model="m", structured_output={"type": "object"})
    assert a.identity() != b.identity() and a.identity()["structured_output"]["title"] == "QA"
    recursive = {
        "$defs": {"N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}}},
        "$ref": "#/$defs/N",
    }
    with pytest.raises(ValueError, match="recursive"):
        OpenAICompatLLM(model="m", structured_output=recursive)
    with pytest.raises(ValueError, match="not both"):
        OpenAICompatLLM(
            model="m", structured_output=QA, generation_kwargs={"response_format": {"type": "x"}}
        )
    with pytest.raises(SchemaError, match="unsupported JSON schema type"):
        type_from_schema({"type": "tensor"})


def test_rebuilt_types_cover_formats_tuples_constraints_and_nullable():
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "when": {"type": "string", "format": "date"},
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]},
            "tags": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[a-z]+$"},
                "maxItems": 2,
            },
            "maybe": {"type": ["integer", "null"]},
            "_private-name": {"const": 1},
        },
        "required": ["when"],
    }
    v = OutputValidator(schema)
    assert v.accepts({"when": "2024-01-02", "pair": [1, "a"], "tags": ["ab"], "maybe": None})
    assert v.parse('{"when": "2024-01-02", "_private-name": 1}')["_private-name"] == 1
    for bad in [
        {"when": "yesterday"},
        {"when": "2024-01-02", "pair": [1]},
        {"when": "2024-01-02", "tags": ["A"]},
        {"when": "2024-01-02", "tags": list("abc")},
        {"when": "2024-01-02", "maybe": "x"},
        {"when": "2024-01-02", "other": 1},
    ]:
        assert not v.accepts(bad), bad


# ---------------------------------------------------------------- the real model
@pytest.mark.model
@pytest.mark.skipif(not model_available(), reason=NEEDS_MODEL_REASON)
def test_embedded_grammar_constrained_output_is_parsed():
    schema = {
        "type": "object",
        "properties": {"color": {"enum": ["red", "green", "blue"]}},
        "required": ["color"],
        "additionalProperties": False,
    }
    llm = EmbeddedLLM(
        structured_output=schema, n_threads=1, n_ctx=512, generation_kwargs={"max_tokens": 40}
    )
    task = TextGeneration(llm=llm, template="Name a primary color: {n}")
    kept, rejected = run_step(task, [{"n": 1}])
    assert rejected == [], rejected
    assert kept[0]["parsed"]["color"] in {"red", "green", "blue"}
    assert json.loads(kept[0]["generation"]) == kept[0]["parsed"]


# ---------------------------------------------------------------- budgets
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_paces_after_a_one_second_burst():
    clock = FakeClock()
    bucket = TokenBucket(120, clock=clock)  # 2 per second, bursts of 2
    assert [bucket.reserve() for _ in range(2)] == [0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.5)
    assert bucket.reserve() == pytest.approx(1.0)  # queued behind the previous caller
    clock.now = 10.0
    assert bucket.reserve() == 0.0
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_token_budget_is_corrected_with_reported_usage():
    clock = FakeClock()
    budget = RateBudget(None, 600)  # 10 tokens/s
    budget.tokens = TokenBucket(600, clock=clock)
    assert budget.reserve(10) == 0.0
    budget.settle(10, 30)  # the request really cost 30 tokens
    assert budget.reserve(5) == pytest.approx(2.5)
    assert estimate_tokens(400, 16) == 400 // 4 + 1 + 16
    assert not RateBudget(None, None).active


def test_rpm_budget_spaces_requests_to_the_server(fake_openai):
    llm = llm_for(fake_openai, rpm=240)  # 4 per second, bursts of 4
    msgs = [[{"role": "user", "content": f"m{i}"}] for i in range(8)]
    gens = llm.generate(msgs)
    assert all(g.ok for g in gens)
    times = sorted(fake_openai.times)
    assert times[-1] - times[0] >= 0.9  # 4 at once, then one every 0.25 s
    assert times[-1] - times[0] < 3.0


def test_budget_is_shared_by_event_loops_of_one_instance(fake_openai):
    llm = llm_for(fake_openai, rpm=120)
    llm.load()
    for i in range(3):
        asyncio.run(llm.agenerate([{"role": "user", "content": f"x{i}"}]))
    times = fake_openai.times
    assert times[2] - times[0] >= 0.45  # the third request waited for the shared budget
    llm.unload()
