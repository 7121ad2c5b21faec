"""Failure semantics against the REAL llama.cpp server behind a fault-injecting proxy (C12, C13).

One bad response out of 20 costs nothing when retries are allowed; a request that keeps failing
costs exactly its row, rejected ``provider_error`` or ``timeout``, and the other 19 are kept; the
quality report counts provider errors apart from empty outputs.  Model work is tiny: 8 tokens
per answer, one llama.cpp thread.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fastdistill import Pipeline
from fastdistill.builtins.steps import LoadFromDicts
from fastdistill.models import GENERATION_META_KEYS
from fastdistill.testing import make_context, run_step
from fastdistill_llms.embedded import EmbeddedServer
from fastdistill_llms.openai_compat import OpenAICompatLLM
from fastdistill_llms.text_generation import TextGeneration
from llms_fakes import NEEDS_MODEL_REASON, model_available
from llms_proxy import Fault, FaultProxy

pytestmark = [
    pytest.mark.model,
    pytest.mark.slow,
    pytest.mark.skipif(not model_available(), reason=NEEDS_MODEL_REASON),
]

N = 20
BAD = 7  # the row whose request misbehaves
TEMPLATE = "Reply with one word: name a color, number {n}."
TIMEOUT_S = 2.0


def rows(n: int = N) -> list[dict]:
    return [{"id": i, "n": i} for i in range(n)]


def prompt_of(i: int) -> str:
    return TEMPLATE.format(n=i)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """The real llama.cpp server (SmolLM2-135M), shared by the module."""
    with EmbeddedServer(n_ctx=1024, n_parallel=2, n_threads=1) as srv:
        assert srv.base_url is not None
        yield srv.base_url


@pytest.fixture
def proxy(upstream: str) -> Iterator[FaultProxy]:
    with FaultProxy(upstream) as p:
        yield p


def teacher(base_url: str, *, max_retries: int = 2) -> TextGeneration:
    llm = OpenAICompatLLM(
        base_url=base_url,
        model="smollm2",
        api_key_env=None,
        timeout_s=TIMEOUT_S,
        max_retries=max_retries,
        backoff_base_s=0.01,
        generation_kwargs={"max_tokens": 8, "temperature": 0, "seed": 42},
    )
    return TextGeneration(
        name="teacher",
        llm=llm,
        template=TEMPLATE,
        reject_truncated=False,  # 8 tokens often stop at the limit; that is not the point here
        max_in_flight=2,  # the server's two slots: no request waits in its queue
        input_batch_size=N,
    )


@pytest.fixture(scope="module")
def baseline(upstream: str) -> dict[int, str]:
    """Generations through the proxy with no fault (greedy, fixed seed: deterministic)."""
    with FaultProxy(upstream) as p:
        kept, rejected = run_step(teacher(p.base_url), rows())
    assert rejected == [] and len(kept) == N
    return {r["id"]: r["generation"] for r in kept}


ONCE = {
    "429_retry_after": Fault.status(429, b'{"error": "rate limited"}', Retry_After="1"),
    "500": Fault.status(500, b"upstream exploded"),
    "truncated_json": Fault.truncated(),
    "hang_past_timeout": Fault.hang(30),
    "connection_closed": Fault.close(),
}


@pytest.mark.parametrize("kind", list(ONCE))
def test_one_bad_response_out_of_20_costs_nothing_with_retries(proxy, baseline, kind):
    fault = ONCE[kind]
    proxy.script = lambda body, seen: (
        fault if body_prompt(body) == prompt_of(BAD) and not seen else None
    )
    t0 = time.perf_counter()
    kept, rejected = run_step(teacher(proxy.base_url), rows())
    elapsed = time.perf_counter() - t0
    assert rejected == []
    assert {r["id"]: r["generation"] for r in kept} == baseline  # same answers, none lost
    assert proxy.faults == [fault.kind] and len(proxy.requests) == N + 1
    if kind == "429_retry_after":
        retry = [i for i, b in enumerate(proxy.requests) if body_prompt(b) == prompt_of(BAD)]
        assert len(retry) == 2
        assert elapsed >= 1.0  # the server's Retry-After was honoured


ALWAYS = {
    "429": (Fault.status(429, b"slow down", Retry_After="0"), "provider_error", "HTTP 429"),
    "500": (Fault.status(500, b"upstream exploded"), "provider_error", "HTTP 500"),
    "truncated_json": (Fault.truncated(), "provider_error", "malformed"),
    "connection_closed": (Fault.close(), "provider_error", "RemoteProtocolError"),
    "hang_past_timeout": (Fault.hang(30), "timeout", "Timeout"),
}


@pytest.mark.parametrize("kind", list(ALWAYS))
def test_persistent_failure_rejects_exactly_that_row(proxy, baseline, kind):
    fault, reason, detail = ALWAYS[kind]
    proxy.script = lambda body, seen: fault if body_prompt(body) == prompt_of(BAD) else None
    ctx = make_context("teacher")
    kept, rejected = run_step(teacher(proxy.base_url, max_retries=1), rows(), ctx)
    assert {r["id"]: r["generation"] for r in kept} == {
        i: g for i, g in baseline.items() if i != BAD
    }
    [(row, rej)] = rejected
    assert row["id"] == BAD and rej.reason == reason and detail in rej.detail
    assert "2 attempts" in rej.detail
    assert row["generation"] is None
    assert tuple(row["generation_meta"]) == GENERATION_META_KEYS  # same keys as kept rows (C02)
    assert row["generation_meta"]["error_kind"] == reason
    assert proxy.faults == [fault.kind] * 2  # first try + one retry, then the row is given up
    assert ctx.metrics.counters()[f"rejected.{reason}"] == 1


def test_quality_report_counts_provider_errors_apart_from_empty_outputs(proxy, tmp_path):
    """Through ``fastdistill.Pipeline`` with ``load_from_dicts``: the report tells them apart."""
    script = {
        prompt_of(3): Fault.status(503, b"overloaded"),  # provider_error
        prompt_of(5): Fault.hang(30),  # timeout
        prompt_of(11): Fault.rewrite(None, "length"),  # no content at the token limit
        prompt_of(13): Fault.rewrite(""),  # an empty answer
    }
    proxy.script = lambda body, seen: script.get(body_prompt(body))
    pipe = Pipeline(
        "faults",
        LoadFromDicts(name="load", data=rows(), batch_size=N)
        >> teacher(proxy.base_url, max_retries=1),
    )
    result = pipe.run(tmp_path / "out")
    assert result.kept == N - 4 and result.rejected == 4
    quality = json.loads((tmp_path / "out" / "quality_report.json").read_text())
    assert quality["reject_reasons"] == {
        "empty_output": 1,
        "length": 1,
        "provider_error": 1,
        "timeout": 1,
    }
    assert quality["provider_errors"] == 2 and quality["empty_outputs"] == 1
    rejected = [
        json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()
    ]
    by_id = {r["id"]: r for r in rejected}
    assert {i: r["_rejection"]["reason"] for i, r in by_id.items()} == {
        3: "provider_error",
        5: "timeout",
        11: "length",
        13: "empty_output",
    }
    kept = [
        json.loads(line) for line in (tmp_path / "out" / "dataset.jsonl").read_text().splitlines()
    ]
    assert all(set(r["generation_meta"]) == set(GENERATION_META_KEYS) for r in kept + rejected)
    assert all(r["generation"] for r in kept)


def body_prompt(body: dict) -> str:
    users = [m for m in body.get("messages") or () if m.get("role") == "user"]
    return users[-1]["content"] if users else ""


def test_a_prompt_longer_than_the_real_servers_context_is_invalid_input(upstream):
    llm = OpenAICompatLLM(base_url=upstream, model="smollm2", api_key_env=None,
                          generation_kwargs={"max_tokens": 4, "temperature": 0})
    [gen] = llm.generate([[{"role": "user", "content": "sea sky " * 800}]])  # > 1024 tokens
    assert gen.error_kind == "invalid_input", gen.error  # never retried on a rerun
    assert "context" in gen.error


def test_structured_output_through_the_real_llamacpp_server(upstream):
    """``structured_output_mode="json_schema"``: llama.cpp's grammar, then our validation."""
    schema = {
        "type": "object",
        "properties": {"color": {"enum": ["red", "green", "blue"]}},
        "required": ["color"],
        "additionalProperties": False,
    }
    llm = OpenAICompatLLM(
        base_url=upstream,
        model="smollm2",
        api_key_env=None,
        structured_output=schema,
        structured_output_mode="json_schema",
        generation_kwargs={"max_tokens": 40, "temperature": 0},
    )
    [gen] = llm.generate([[{"role": "user", "content": "Name a primary color."}]])
    assert gen.ok, gen.error
    assert gen.parsed["color"] in {"red", "green", "blue"}
