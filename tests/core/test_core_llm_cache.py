"""The LLM response cache: keys, hits and misses, persistence, concurrency, failures, secrets."""

from __future__ import annotations

import asyncio
import logging
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from fastdistill import Generation, StepContext, StorageBackend
from fastdistill.cache import (
    LLMCacheError,
    LLMResponseCache,
    default_cache_path,
    request_key,
)
from fastdistill.testing import ScriptedLLM
from pydantic import BaseModel, PrivateAttr, SecretStr

SECRET = "sk-test-PLANTED-cache-0123456789abcdef"
USER = [{"role": "user", "content": "What is 2 + 2?"}]


def ask(cache: LLMResponseCache, llm: Any, messages: Any = USER, **kw: Any) -> Generation:
    return asyncio.run(cache.get_or_generate(llm, messages, **kw))


def echo(messages: Any) -> str:
    return f"answer to {messages[-1]['content']}"


@pytest.fixture
def cache(tmp_path: Path) -> Any:
    with LLMResponseCache(tmp_path / "cache" / "llm_responses.sqlite") as c:
        yield c


def test_identical_request_is_a_hit(cache: LLMResponseCache) -> None:
    llm = ScriptedLLM(script=echo)
    first = ask(cache, llm)
    second = ask(cache, llm)
    assert llm.calls == 1
    assert not first.cached and second.cached
    assert second.text == first.text == "answer to What is 2 + 2?"
    assert second.usage == first.usage and second.finish_reason == "stop"
    assert second.meta().keys() == first.meta().keys()  # meta() keys unchanged by caching
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["stores"]) == (1, 1, 1)
    assert stats["enabled"] and cache.count() == 1


def test_changed_prompt_parameter_or_model_is_a_miss(cache: LLMResponseCache) -> None:
    llm = ScriptedLLM(script=echo)
    ask(cache, llm)
    ask(cache, llm, [{"role": "user", "content": "What is 3 + 3?"}])
    ask(cache, llm, [{"role": "system", "content": "Be brief."}, *USER])
    ask(cache, llm, temperature=0.7)
    ask(cache, llm, temperature=0.2)
    assert llm.calls == 5

    tuned = ScriptedLLM(script=echo, generation_kwargs={"max_tokens": 64})
    ask(cache, tuned)
    assert tuned.calls == 1
    other_model = ScriptedLLM(script=echo, name_="another-teacher")
    ask(cache, other_model)
    assert other_model.calls == 1

    # and each of them is now a hit
    again = ScriptedLLM(script=echo)
    for kw in ({}, {"temperature": 0.7}, {"temperature": 0.2}):
        assert ask(cache, again, **kw).cached
    assert ask(cache, ScriptedLLM(script=echo, name_="another-teacher")).cached
    assert again.calls == 0
    assert cache.count() == 7


class Answer(BaseModel):
    value: int


class Other(BaseModel):
    value: str


class SchemaLLM(ScriptedLLM):
    structured_output: Any = None


def test_changed_schema_is_a_miss(cache: LLMResponseCache) -> None:
    a = SchemaLLM(script=lambda m: '{"value": 4}', structured_output={"schema": Answer})
    b = SchemaLLM(script=lambda m: '{"value": "4"}', structured_output={"schema": Other})
    ask(cache, a)
    ask(cache, b)
    assert a.calls == b.calls == 1
    assert ask(cache, a).cached and ask(cache, a, response_format={"type": "json_object"}).cached \
        is False
    # an override naming a response format is part of the key too
    assert a.calls == 2


def test_key_ignores_dict_order_and_secrets() -> None:
    one = ScriptedLLM(generation_kwargs={"temperature": 0.1, "max_tokens": 5})
    two = ScriptedLLM(generation_kwargs={"max_tokens": 5, "temperature": 0.1})
    assert request_key(one, USER, {}) == request_key(two, USER, {})
    assert request_key(one, USER, {"api_key": "a"}) == request_key(one, USER, {"api_key": "b"})
    assert request_key(one, USER, {"top_p": 0.5}) != request_key(one, USER, {})


def test_failures_are_not_cached(cache: LLMResponseCache) -> None:
    outcomes = [
        Generation(text=None, model="scripted", error_kind="provider_error", error="HTTP 503"),
        Generation(text="   ", model="scripted"),  # empty output: not a usable answer
        "finally",
    ]
    llm = ScriptedLLM(script=lambda m: outcomes.pop(0))
    assert ask(cache, llm).error_kind == "provider_error"
    assert not ask(cache, llm).ok
    assert ask(cache, llm).text == "finally"
    assert ask(cache, llm).cached
    assert llm.calls == 3 and cache.count() == 1

    def boom(messages: Any) -> str:
        raise RuntimeError("model crashed")

    crashing = ScriptedLLM(script=boom, name_="crashing")
    with pytest.raises(RuntimeError, match="model crashed"):
        ask(cache, crashing)
    assert cache.count() == 1


def test_entries_persist_across_instances_and_pickling(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    first_run = ScriptedLLM(script=echo)
    with LLMResponseCache(path) as c1:
        ask(c1, first_run)
    second_run = ScriptedLLM(script=echo)
    with LLMResponseCache(path) as c2:
        assert ask(c2, second_run).cached
        copy = pickle.loads(pickle.dumps(c2))  # engines may ship the cache to a worker
    assert second_run.calls == 0 and first_run.calls == 1
    assert ask(copy, second_run).cached and copy.stats()["hits"] == 1
    copy.close()


def test_default_location_follows_the_environment(tmp_path: Path) -> None:
    assert default_cache_path({"FASTDISTILL_CACHE_DIR": str(tmp_path)}) == (
        tmp_path / "llm_responses.sqlite"
    )
    assert default_cache_path({}) == Path.home() / ".cache" / "fastdistill" / "llm_responses.sqlite"


def test_identical_requests_in_flight_ask_the_model_once(cache: LLMResponseCache) -> None:
    llm = ScriptedLLM(script=echo, latency_s=0.05)

    async def many() -> list[Generation]:
        return list(await asyncio.gather(*(cache.get_or_generate(llm, USER) for _ in range(6))))

    gens = asyncio.run(many())
    assert llm.calls == 1
    assert sum(not g.cached for g in gens) == 1 and all(g.text == gens[0].text for g in gens)


def test_concurrent_use_from_threads(cache: LLMResponseCache) -> None:
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(30)]
    llm = ScriptedLLM(script=echo)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        async def go() -> None:
            for i in range(len(prompts)):
                p = prompts[(i + offset) % len(prompts)]
                gen = await cache.get_or_generate(llm, p)
                assert gen.text == f"answer to {p[0]['content']}"
        try:
            asyncio.run(go())
        except BaseException as exc:  # reported in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k * 7,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    stats = cache.stats()
    assert stats["hits"] + stats["misses"] == 8 * 30 and stats["errors"] == 0
    assert cache.count() == 30
    before = llm.calls
    assert all(ask(cache, llm, p).cached for p in prompts) and llm.calls == before


WRITER = textwrap.dedent("""
    import asyncio, sys
    from fastdistill.cache import LLMResponseCache
    from fastdistill.testing import ScriptedLLM
    cache = LLMResponseCache(sys.argv[1])
    llm = ScriptedLLM(script=lambda m: "A:" + m[0]["content"], cache_identity="writer")
    async def go():
        for i in range(40):
            await cache.get_or_generate(llm, [{"role": "user", "content": f"p{i}"}])
    asyncio.run(go())
    print(cache.stats()["errors"])
""")


def test_concurrent_use_from_processes(tmp_path: Path) -> None:
    path = tmp_path / "mp.sqlite"
    procs = [
        subprocess.Popen([sys.executable, "-W", "error", "-c", WRITER, str(path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "0"
    with LLMResponseCache(path) as c:
        assert c.count() == 40
        llm = ScriptedLLM(script=lambda m: "never", cache_identity="writer")
        assert ask(c, llm, [{"role": "user", "content": "p7"}]).text == "A:p7"


def test_corrupted_database_falls_back_to_no_cache_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "llm_responses.sqlite"
    path.write_bytes(b"this is not a sqlite database" * 100)
    cache = LLMResponseCache(path)
    llm = ScriptedLLM(script=echo)
    with caplog.at_level(logging.WARNING, logger="fastdistill.cache"):
        assert ask(cache, llm).text == "answer to What is 2 + 2?"
        assert not ask(cache, llm).cached
    assert llm.calls == 2
    warnings = [r for r in caplog.records if r.name == "fastdistill.cache"]
    assert len(warnings) == 1  # one warning, not one per request
    assert str(path) in warnings[0].getMessage() and "WITHOUT the cache" in warnings[0].getMessage()
    stats = cache.stats()
    assert not stats["enabled"] and "not a database" in stats["disabled_reason"]

    with pytest.raises(LLMCacheError, match="unusable"):
        ask(LLMResponseCache(path, strict=True), llm)


def test_locked_database_skips_that_write_and_keeps_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "locked.sqlite"
    cache = LLMResponseCache(path, timeout_s=0.05)
    llm = ScriptedLLM(script=echo)
    ask(cache, llm, [{"role": "user", "content": "warm"}])  # creates the database
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.WARNING, logger="fastdistill.cache"):
            assert ask(cache, llm).text == "answer to What is 2 + 2?"
        assert any("locked" in r.getMessage() for r in caplog.records)
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert cache.enabled and cache.stats()["errors"] >= 1
    assert not ask(cache, llm).cached  # the locked write was skipped ...
    assert ask(cache, llm).cached  # ... and the cache works again
    cache.close()


@pytest.mark.parametrize("stored", [
    '{"text": 5}', '{"text": "ok", "usage": {"prompt_tokens": "many"}}',
    '{"text": "ok", "latency_s": "slow"}', '{"text": "ok", "model": 3}', '[]', 'not json',
    '{"text": "", "error_kind": null}', '{"text": "x", "error_kind": "provider_error"}',
])
def test_an_entry_that_is_not_a_generation_is_a_miss_and_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, stored: str
) -> None:
    path = tmp_path / "c.sqlite"
    llm = ScriptedLLM(script=echo)
    with LLMResponseCache(path) as cache:
        ask(cache, llm)
    with sqlite3.connect(str(path)) as conn:  # damaged, or written by another tool
        conn.execute("UPDATE responses SET generation = ?", (stored,))
    with LLMResponseCache(path) as cache, caplog.at_level(logging.WARNING, "fastdistill.cache"):
        again = ask(cache, llm)
        assert not again.cached and again.text == "answer to What is 2 + 2?" and llm.calls == 2
        assert any("unreadable entry" in r.getMessage() for r in caplog.records)
        assert ask(cache, llm).cached and llm.calls == 2  # the entry was replaced


def test_a_run_whose_cache_is_unusable_says_so_in_its_reports(tmp_path: Path) -> None:
    from fastdistill import Pipeline
    from fastdistill.builtins.steps import LoadFromDicts
    from llm_helpers import Ask

    path = tmp_path / "broken.sqlite"
    path.write_bytes(b"this is not a sqlite database" * 100)
    llm = ScriptedLLM(script=echo)
    data = [{"id": i, "q": f"q{i}"} for i in range(5)]
    result = Pipeline("broken-cache", LoadFromDicts(data=data) >> Ask(llm=llm)).run(
        tmp_path / "out", llm_cache=path)
    assert result.kept == 5 and llm.calls == 5  # the run went on without the cache
    cache_report = result.timing["llm_cache"]
    assert cache_report["enabled"] is False and "not a database" in cache_report["disabled_reason"]
    assert any("unusable" in w and str(path) in w for w in result.quality["warnings"])


@pytest.mark.parametrize("populated", [False, True], ids=["first-lookup", "lookup"])
def test_database_locked_during_a_lookup_is_a_miss_and_the_cache_keeps_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    populated: bool,
) -> None:
    path = tmp_path / "busy.sqlite"
    llm = ScriptedLLM(script=echo)
    if populated:
        with LLMResponseCache(path) as earlier:
            ask(earlier, ScriptedLLM(script=echo))
    cache = LLMResponseCache(path)
    real = LLMResponseCache._new_connection
    attempts = []

    def locked_once(self: LLMResponseCache) -> Any:
        attempts.append(1)
        if len(attempts) <= 2:  # another process holds the file's lock right now
            raise sqlite3.OperationalError("database is locked")
        return real(self)

    monkeypatch.setattr(LLMResponseCache, "_new_connection", locked_once)
    with caplog.at_level(logging.WARNING, logger="fastdistill.cache"):
        first = ask(cache, llm)
    assert first.text == "answer to What is 2 + 2?" and not first.cached  # a miss, not a failure
    assert any("locked" in r.getMessage() for r in caplog.records)
    # both the first lookup's emptiness check and the lookup itself met the lock
    assert cache.enabled and cache.stats()["errors"] == 2 and llm.calls == 1
    assert ask(cache, llm).cached  # the answer was stored, and lookups work again
    assert llm.calls == 1
    cache.close()


def test_step_context_uses_the_cache_and_counts(tmp_path: Path) -> None:
    llm = ScriptedLLM(script=echo)
    plain = StepContext(run_id="r", step_name="teacher", storage=StorageBackend(str(tmp_path)))
    assert asyncio.run(plain.agenerate(llm, USER)).text and llm.calls == 1
    assert plain.metrics.counters() == {"llm_calls": 1}  # without a cache every call counts

    with LLMResponseCache(tmp_path / "c.sqlite") as cache:
        ctx = StepContext(run_id="r", step_name="teacher", storage=StorageBackend(str(tmp_path)),
                          llm_cache=cache)
        for _ in range(3):
            asyncio.run(ctx.agenerate(llm, USER, temperature=0.0))
    assert llm.calls == 2
    assert ctx.metrics.counters() == {"llm_cache.misses": 1, "llm_cache.hits": 2}


class KeyedLLM(ScriptedLLM):
    """A careless model: a secret field, a secret attribute, and an identity that leaks one."""

    api_key: SecretStr | None = None
    auth_token: str = ""
    _secret: str = PrivateAttr(default="")

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "api_key": SECRET, "auth": {"token": SECRET}}


def test_secrets_never_reach_the_database(tmp_path: Path) -> None:
    path = tmp_path / "secrets.sqlite"
    llm = KeyedLLM(script=echo, api_key=SecretStr(SECRET), auth_token=SECRET)
    llm._secret = SECRET
    with LLMResponseCache(path) as cache:
        ask(cache, llm)
        ask(cache, llm, api_key=SECRET, extra_headers={"Authorization": f"Bearer {SECRET}"})
        assert ask(cache, llm).cached
    files = [p for p in tmp_path.iterdir() if p.name.startswith("secrets.sqlite")]
    assert files
    for file in files:  # the database and any -wal / -shm file
        data = file.read_bytes()
        assert SECRET.encode() not in data, file
        assert b"PLANTED" not in data, file


def test_token_limits_are_not_mistaken_for_secrets() -> None:
    llm = ScriptedLLM()
    keys = {request_key(llm, USER, {k: 5}) for k in ("max_tokens", "max_new_tokens", "n")}
    assert len(keys) == 3 and request_key(llm, USER, {}) not in keys


def test_every_generation_field_round_trips_and_odd_values_are_not_stored(
    cache: LLMResponseCache,
) -> None:
    extra = {f: v for f, v in (("parsed", {"value": 4, "items": [1, 2]}),)
             if f in Generation.__dataclass_fields__}
    full = Generation(text='{"value": 4}', model="m", finish_reason="stop",
                      usage={"prompt_tokens": 3, "completion_tokens": 2}, latency_s=1.5, **extra)
    llm = ScriptedLLM(script=lambda m: full)
    ask(cache, llm)
    hit = ask(cache, llm)
    assert hit.cached and llm.calls == 1
    for name in Generation.__dataclass_fields__:
        if name not in ("cached", "latency_s"):
            assert getattr(hit, name) == getattr(full, name), name

    odd = Generation(text="x", model="m")
    odd.usage = {"prompt_tokens": object()}  # type: ignore[dict-item]
    weird = ScriptedLLM(script=lambda m: odd, name_="weird")
    assert ask(cache, weird).text == "x" and not ask(cache, weird).cached
    assert weird.calls == 2 and cache.stats()["bypassed"] == 2
