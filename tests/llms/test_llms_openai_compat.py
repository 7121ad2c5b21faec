"""openai_compat against a real HTTP server on 127.0.0.1 (cases C07, C12, C13)."""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import logging
import pickle
import threading
import time

import pytest
from fastdistill.models import GENERATION_META_KEYS
from fastdistill.testing import make_context, run_step
from fastdistill_llms._httppool import display_url
from fastdistill_llms.openai_compat import OpenAICompatLLM, parse_retry_after
from fastdistill_llms.text_generation import TextGeneration
from llms_fakes import last_user, ok_reply

MSG = [{"role": "user", "content": "hello"}]


def llm_for(fake, **kw) -> OpenAICompatLLM:
    kw.setdefault("api_key_env", None)
    kw.setdefault("backoff_base_s", 0.01)
    return OpenAICompatLLM(base_url=fake.base_url, model="teacher-x", **kw)


def rows(n: int) -> list[dict]:
    return [{"id": i, "question": f"q{i}"} for i in range(n)]


# ---------------------------------------------------------------- C07 generation_kwargs
def test_constructor_kwargs_reach_the_body_when_called_directly_c07(fake_openai):
    llm = llm_for(fake_openai, generation_kwargs={"max_new_tokens": 2048, "temperature": 0.7})
    [gen] = llm.generate([MSG])
    assert gen.ok and gen.text == "echo: hello"
    [body] = fake_openai.requests
    assert body["max_tokens"] == 2048 and body["temperature"] == 0.7
    assert "max_new_tokens" not in body
    assert body["model"] == "teacher-x" and body["messages"] == MSG


def test_constructor_kwargs_reach_the_body_through_text_generation_c07(fake_openai):
    llm = llm_for(fake_openai, generation_kwargs={"max_new_tokens": 2048, "temperature": 0.7})
    kept, rejected = run_step(TextGeneration(llm=llm, template="Q: {question}"), rows(2))
    assert len(kept) == 2 and rejected == []
    assert all(b["max_tokens"] == 2048 and b["temperature"] == 0.7 for b in fake_openai.requests)
    assert len(fake_openai.requests) == 2


def test_per_call_overrides_win_and_are_validated(fake_openai):
    llm = llm_for(fake_openai, generation_kwargs={"max_tokens": 10, "temperature": 0.7})
    llm.generate([MSG], max_new_tokens=5)
    assert fake_openai.requests[0]["max_tokens"] == 5
    assert fake_openai.requests[0]["temperature"] == 0.7
    with pytest.raises(ValueError, match="tempreature"):
        llm.generate([MSG], tempreature=0.1)


def test_unknown_generation_kwarg_is_a_clear_error_c07():
    with pytest.raises(ValueError) as err:
        OpenAICompatLLM(model="m", generation_kwargs={"max_tokenz": 5})
    msg = str(err.value)
    assert "'max_tokenz'" in msg and "max_tokens" in msg and "Valid keys" in msg


@pytest.mark.parametrize(
    "kwargs", [{"n": 2}, {"max_tokens": 0}, {"max_new_tokens": 5, "max_tokens": 6}]
)
def test_refused_generation_kwargs(kwargs):
    with pytest.raises(ValueError):
        OpenAICompatLLM(model="m", generation_kwargs=kwargs)


def test_non_ascii_prompt_round_trips(fake_openai):
    msg = [{"role": "user", "content": "héllo ✓ 你好"}]
    [gen] = llm_for(fake_openai).generate([msg])
    assert gen.text == "echo: héllo ✓ 你好"
    assert fake_openai.requests[0]["messages"] == msg


def test_extra_body_is_merged_verbatim(fake_openai):
    llm = llm_for(fake_openai, generation_kwargs={"extra_body": {"top_k": 3}})
    llm.generate([MSG])
    assert fake_openai.requests[0]["top_k"] == 3 and "extra_body" not in fake_openai.requests[0]


# ---------------------------------------------------------------- retries
def test_retries_on_500_then_succeeds(fake_openai):
    fake_openai.script = lambda body, seen: (
        (500, {}, b"upstream down") if seen < 2 else ok_reply("fine")
    )
    [gen] = llm_for(fake_openai).generate([MSG])
    assert gen.text == "fine" and gen.error_kind is None
    assert len(fake_openai.requests) == 3


def test_4xx_is_not_retried(fake_openai):
    fake_openai.script = lambda body, seen: (400, {}, b'{"error": "bad request"}')
    [gen] = llm_for(fake_openai).generate([MSG])
    assert gen.error_kind == "provider_error" and "HTTP 400" in gen.error
    assert len(fake_openai.requests) == 1


def test_a_prompt_too_long_for_the_context_is_invalid_input_not_retried(fake_openai):
    body = (b'{"error": {"message": "This model\'s maximum context length is 8192 tokens",'
            b' "code": "context_length_exceeded"}}')
    fake_openai.script = lambda body_in, seen: (400, {}, body)
    [gen] = llm_for(fake_openai).generate([MSG])
    assert gen.error_kind == "invalid_input" and "maximum context length" in gen.error
    assert len(fake_openai.requests) == 1


def test_429_retry_after_is_honoured(fake_openai):
    fake_openai.script = lambda body, seen: (
        (429, {"Retry-After": "1"}, b"slow down") if seen == 0 else ok_reply("fine")
    )
    [gen] = llm_for(fake_openai, backoff_base_s=0.001).generate([MSG])
    assert gen.text == "fine"
    t0, t1 = fake_openai.times
    assert t1 - t0 >= 0.95  # waited for Retry-After, not the 1 ms backoff


def test_retries_exhausted_is_provider_error_not_an_exception(fake_openai):
    fake_openai.script = lambda body, seen: (503, {}, b"nope")
    [gen] = llm_for(fake_openai, max_retries=2).generate([MSG])
    assert gen.text is None and gen.error_kind == "provider_error"
    assert "HTTP 503" in gen.error and "3 attempts" in gen.error
    assert len(fake_openai.requests) == 3


def test_parse_retry_after():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < parse_retry_after(later) <= 31


# ---------------------------------------------------------------- C13 malformed JSON
def _malformed_for_q6(always: bool):
    def script(body, seen):
        if last_user(body) == "Q: q6" and (always or seen == 0):
            return 200, {"Content-Type": "application/json"}, b'{"choices": [{"message": {"con'
        return ok_reply("SELECT " + last_user(body))

    return script


def test_one_malformed_response_is_retried_and_all_20_rows_kept_c13(fake_openai):
    fake_openai.script = _malformed_for_q6(always=False)
    t = TextGeneration(
        llm=llm_for(fake_openai, max_retries=2), template="Q: {question}", input_batch_size=20
    )
    kept, rejected = run_step(t, rows(20))
    assert rejected == [] and sorted(r["id"] for r in kept) == list(range(20))
    assert all(r["generation"].startswith("SELECT Q: q") for r in kept)
    assert len(fake_openai.requests) == 21


def test_always_malformed_rejects_exactly_that_row_provider_error_c13(fake_openai):
    fake_openai.script = _malformed_for_q6(always=True)
    ctx = make_context("teacher")
    t = TextGeneration(llm=llm_for(fake_openai, max_retries=2), template="Q: {question}")
    kept, rejected = run_step(t, rows(20), ctx)
    assert sorted(r["id"] for r in kept) == [i for i in range(20) if i != 6]
    [(row, rej)] = rejected
    assert row["id"] == 6 and rej.reason == "provider_error" and "malformed" in rej.detail
    assert row["generation"] is None and tuple(row["generation_meta"]) == GENERATION_META_KEYS
    counters = ctx.metrics.counters()
    assert counters["rejected.provider_error"] == 1 and "rejected.empty_output" not in counters


# ---------------------------------------------------------------- C12 timeout
def test_timeout_rejects_that_row_with_reason_timeout_c12(fake_openai, caplog):
    def script(body, seen):
        if last_user(body) == "Q: q1":
            time.sleep(1.0)
        return ok_reply("ok")

    fake_openai.script = script
    llm = llm_for(fake_openai, timeout_s=0.25, max_retries=1)
    with caplog.at_level(logging.WARNING):
        kept, rejected = run_step(TextGeneration(llm=llm, template="Q: {question}"), rows(3))
    assert [r["id"] for r in kept] == [0, 2]
    [(row, rej)] = rejected
    assert rej.reason == "timeout" and row["generation_meta"]["error_kind"] == "timeout"
    assert "Timeout" in rej.detail and "timeout" in caplog.text


def test_connection_refused_is_provider_error():
    llm = OpenAICompatLLM(
        base_url="http://127.0.0.1:9/v1",
        model="m",
        api_key_env=None,
        max_retries=1,
        backoff_base_s=0.001,
    )
    [gen] = llm.generate([MSG])
    assert gen.error_kind == "provider_error" and "ConnectError" in gen.error
    # the error names the endpoint it could not reach
    assert "cannot connect to http://127.0.0.1:9/v1/chat/completions" in gen.error
    assert "2 attempts" in gen.error


def test_unreachable_url_error_never_shows_credentials_from_the_url():
    llm = OpenAICompatLLM(
        base_url="http://user:hunter2@127.0.0.1:9/v1?api-key=k3y",
        model="m",
        api_key_env=None,
        max_retries=0,
    )
    [gen] = llm.generate([MSG])
    assert "ConnectError: cannot connect to http://127.0.0.1:9/v1" in gen.error
    assert "hunter2" not in gen.error and "k3y" not in gen.error and "user" not in gen.error


def test_display_url_drops_user_info_query_and_fragment():
    assert display_url("https://u:p@api.example.com:8443/v1/x?key=1#f") == (
        "https://api.example.com:8443/v1/x"
    )
    assert display_url("http://[::1]:80/v1") == "http://[::1]:80/v1"


# ---------------------------------------------------------------- empty / length
def test_null_content_with_length_is_rejected_length(fake_openai):
    fake_openai.script = lambda body, seen: ok_reply(None, finish_reason="length")
    kept, rejected = run_step(
        TextGeneration(llm=llm_for(fake_openai), template="{question}"), rows(1)
    )
    assert kept == [] and rejected[0][1].reason == "length"
    meta = rejected[0][0]["generation_meta"]
    assert meta["finish_reason"] == "length" and meta["completion_tokens"] == 3


def test_empty_content_is_empty_output(fake_openai):
    fake_openai.script = lambda body, seen: ok_reply("")
    [gen] = llm_for(fake_openai).generate([MSG])
    assert gen.text is None and gen.error_kind == "empty_output"
    assert len(fake_openai.requests) == 1  # a valid empty answer is not retried


def test_usage_and_finish_reason_recorded(fake_openai):
    [gen] = llm_for(fake_openai).generate([MSG])
    assert gen.finish_reason == "stop"
    assert gen.usage == {"prompt_tokens": 7, "completion_tokens": 3}
    assert gen.latency_s > 0


# ---------------------------------------------------------------- secrets
def test_api_key_is_sent_as_bearer_and_never_exposed(fake_openai, monkeypatch, caplog):
    secret = "sk-test-SECRET-1234"
    monkeypatch.setenv("FD_TEST_API_KEY", secret)
    llm = OpenAICompatLLM(base_url=fake_openai.base_url, model="m", api_key_env="FD_TEST_API_KEY")
    task = TextGeneration(llm=llm, template="{question}")
    with caplog.at_level(logging.DEBUG):
        kept, _ = run_step(task, rows(1))
        task.load(make_context())  # loaded state: key in memory
    assert fake_openai.headers[0]["authorization"] == f"Bearer {secret}"
    exposed = [
        repr(llm),
        str(llm),
        repr(task),
        json.dumps(llm.model_dump()),
        json.dumps(task.model_dump(), default=str),
        json.dumps(llm.identity()),
        json.dumps(kept, default=str),
        caplog.text,
    ]
    assert not [s for s in exposed if secret in s]
    assert secret.encode() not in pickle.dumps(llm)
    assert (
        "api_key" not in llm.model_dump() and llm.model_dump()["api_key_env"] == "FD_TEST_API_KEY"
    )
    clone = copy.deepcopy(llm)  # replicas re-read the key at load(), they never copy it
    assert clone._rt.secret is None
    task.unload()


def test_no_authorization_header_without_key(fake_openai, monkeypatch):
    monkeypatch.delenv("FD_TEST_API_KEY", raising=False)
    llm = OpenAICompatLLM(base_url=fake_openai.base_url, model="m", api_key_env="FD_TEST_API_KEY")
    llm.generate([MSG])
    assert "authorization" not in fake_openai.headers[0]


def test_identity_has_model_and_kwargs_not_base_url():
    a = OpenAICompatLLM(
        base_url="http://a:1/v1", model="m", generation_kwargs={"max_new_tokens": 9}
    )
    b = OpenAICompatLLM(base_url="http://b:2/v1", model="m", generation_kwargs={"max_tokens": 9})
    assert a.identity() == b.identity()
    assert a.identity()["generation_kwargs"] == {"max_tokens": 9}
    assert "base_url" in OpenAICompatLLM.runtime_parameters_info


# ---------------------------------------------------------------- clients and loops
def test_clients_are_closed_when_each_event_loop_ends(fake_openai):
    llm = llm_for(fake_openai)
    for _ in range(3):  # each generate() is its own event loop
        assert llm.generate([MSG, MSG][:1])[0].ok
    gc.collect()  # an unclosed client/transport would warn here (warnings are errors)
    assert len(llm._rt._per_loop) == 0
    t = TextGeneration(llm=llm, template="{question}", input_batch_size=2)
    ctx = make_context()
    t.load(ctx)
    for batch in (rows(2), rows(2)):
        assert len(list(t.process(batch, ctx))) == 2
    t.unload()
    gc.collect()


def test_each_thread_loop_gets_its_own_session_all_closed(fake_openai):
    """Two pipelines in one process: one model used from two threads (two event loops)."""
    llm = llm_for(fake_openai, max_concurrency=4)
    results: list[bool] = []

    def work() -> None:
        gens = llm.generate([MSG] * 6)
        results.append(all(g.ok for g in gens))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [True, True] and len(fake_openai.requests) == 12
    gc.collect()  # an unclosed aiohttp session would warn here (warnings are errors)
    assert len(llm._rt._per_loop) == 0
    llm.unload()


def test_unload_from_another_thread_closes_the_running_loops_session(fake_openai):
    llm = llm_for(fake_openai)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        fut = asyncio.run_coroutine_threadsafe(llm.agenerate(MSG), loop)
        assert fut.result(10).ok
        [pool] = [entry[0] for entry in llm._rt._per_loop.values()]
        llm.unload()  # from this thread, while the loop runs in the other one
        assert pool.session.closed and len(llm._rt._per_loop) == 0
        fut = asyncio.run_coroutine_threadsafe(llm.agenerate(MSG), loop)
        assert fut.result(10).ok  # a later use in that loop opens a new session
        llm.unload()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    gc.collect()


def _clear_proxy_env(monkeypatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_http_proxy_from_the_environment_is_used(fake_openai, monkeypatch):
    _clear_proxy_env(monkeypatch)
    proxy = fake_openai.base_url.removesuffix("/v1")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    llm = OpenAICompatLLM(base_url="http://teacher.invalid:8000/v1", model="m", api_key_env=None)
    [gen] = llm.generate([MSG])
    assert gen.ok, gen.error
    assert fake_openai.headers[0]["host"] == "teacher.invalid:8000"  # went through the proxy


def test_no_proxy_is_honoured(fake_openai, monkeypatch):
    _clear_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    [gen] = llm_for(fake_openai, max_retries=0).generate([MSG])
    assert gen.ok, gen.error
