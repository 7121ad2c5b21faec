"""The response cache under many concurrent requests: memoised keys, batched lookups, grouped
commit notices."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from fastdistill.cache import LLMResponseCache, request_key
from fastdistill.cache.aio import LookupBatcher, LoopMailbox
from fastdistill.cache.keys import KeyMemo
from fastdistill.testing import ScriptedLLM
from llm_helpers import counting_lookups
from pydantic import BaseModel


def echo(messages: Any) -> str:
    return f"answer to {messages[-1]['content']}"


def prompts(n: int) -> list[list[dict[str, Any]]]:
    return [[{"role": "system", "content": "be brief"},
             {"role": "user", "content": f"question {i} \u00e9\u4e2d"}] for i in range(n)]


@pytest.fixture
def cache(tmp_path: Path) -> Any:
    with LLMResponseCache(tmp_path / "llm_responses.sqlite") as c:
        yield c


class Answer(BaseModel):
    value: int


def test_memo_keys_equal_request_key_and_follow_generation_kwargs() -> None:
    memo = KeyMemo()
    llm = ScriptedLLM(script=echo, generation_kwargs={"temperature": 0.2, "api_key": "sk-x"})
    for messages in prompts(5):
        assert memo.key(llm, messages, {}) == request_key(llm, messages, {})
    before = memo.key(llm, prompts(1)[0], {})
    llm.generation_kwargs["temperature"] = 0.9  # changed in place: the memo notices
    after = memo.key(llm, prompts(1)[0], {})
    assert after != before and after == request_key(llm, prompts(1)[0], {})
    other = ScriptedLLM(script=echo, name_="other")  # another model: its own part
    assert memo.key(other, prompts(1)[0], {}) == request_key(other, prompts(1)[0], {})
    # overrides and schema classes take the full path / are part of the key
    assert memo.key(llm, prompts(1)[0], {"top_p": 0.5}) == request_key(
        llm, prompts(1)[0], {"top_p": 0.5})
    schema = ScriptedLLM(script=echo)
    object.__setattr__(schema, "structured_output", Answer)
    assert memo.key(schema, prompts(1)[0], {}) == request_key(schema, prompts(1)[0], {})
    assert memo.key(schema, prompts(1)[0], {}) != memo.key(ScriptedLLM(script=echo),
                                                           prompts(1)[0], {})


def test_concurrent_lookups_share_one_query_and_hits_are_independent(
    cache: LLMResponseCache,
) -> None:
    llm = ScriptedLLM(script=echo)
    asks = prompts(300)

    async def all_of(messages: list[Any]) -> list[Any]:
        memo = KeyMemo()
        return list(await asyncio.gather(*(cache.request(llm, m, {}, keys=memo)
                                           for m in messages)))

    first = asyncio.run(all_of(asks))
    assert llm.calls == 300 and cache.count() == 300 and not any(g.cached for g in first)

    queries = counting_lookups(cache)
    again = asyncio.run(all_of(asks + asks[:10]))  # 10 asked twice in the same turn
    assert llm.calls == 300  # every one a hit
    assert all(g.cached for g in again)
    assert [g.text for g in again[:300]] == [g.text for g in first]
    assert queries == [300]  # one lookup batch for the turn, duplicate keys asked once
    again[0].usage["prompt_tokens"] = -1  # each caller owns its generation
    assert again[300].usage["prompt_tokens"] != -1


def test_lookup_failure_is_a_miss_not_a_failed_request(cache: LLMResponseCache) -> None:
    llm = ScriptedLLM(script=echo)

    def broken(keys: list[str]) -> dict[str, str]:
        raise RuntimeError("disk on fire")

    cache._lookups = LookupBatcher(broken)
    gen = asyncio.run(cache.get_or_generate(llm, prompts(1)[0]))
    assert gen.ok and not gen.cached and llm.calls == 1


def test_mailbox_delivers_results_from_another_thread_in_groups() -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        box = LoopMailbox(loop)
        futures = [loop.create_future() for _ in range(200)]
        wakeups: list[int] = []
        original = loop.call_soon_threadsafe

        def counting(*args: Any, **kw: Any) -> Any:
            wakeups.append(1)
            return original(*args, **kw)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        worker = threading.Thread(
            target=lambda: [box.post(f, i) for i, f in enumerate(futures)])
        worker.start()
        worker.join()
        results = await asyncio.gather(*futures)
        assert len(wakeups) < len(futures)  # grouped: far fewer wake-ups than results
        return list(results)

    assert asyncio.run(main()) == list(range(200))


def test_stored_entry_round_trips_and_non_finite_latency_is_not_stored(
    cache: LLMResponseCache,
) -> None:
    from fastdistill import Generation

    gen = Generation(text="t \u00e9", model="m", finish_reason="stop",
                     usage={"prompt_tokens": 3}, latency_s=0.25)
    assert cache.put("k1", gen)
    back = cache.get("k1")
    assert back is not None and back.cached
    assert (back.text, back.model, back.usage, back.latency_s) == ("t \u00e9", "m",
                                                                   {"prompt_tokens": 3}, 0.25)
    assert not cache.put("k2", Generation(text="x", latency_s=float("nan")))
    assert cache.get("k2") is None and cache.stats()["bypassed"] == 1


def test_per_loop_state_of_finished_loops_is_dropped(cache: LLMResponseCache) -> None:
    llm = ScriptedLLM(script=echo)
    for i in range(5):  # five runs, five event loops
        asyncio.run(cache.get_or_generate(llm, prompts(6)[i:i + 1][0]))
    assert len(cache._mailboxes) <= 1  # only the last (closed) loop's box is left
    assert not cache._lookups._pending and not cache._writes._pending


def test_barrier_waits_for_answers_queued_without_waiting(cache: LLMResponseCache) -> None:
    from fastdistill import Generation

    async def main() -> int:
        for i in range(50):
            assert await cache.aput(f"k{i}", Generation(text=f"t{i}", model="m"), wait=False)
        await cache.barrier()
        return cache.count()

    assert asyncio.run(main()) == 50


def test_answers_of_one_loop_turn_reach_the_writer_as_one_group(cache: LLMResponseCache) -> None:
    groups: list[int] = []
    submit = cache._writer.submit_many

    def counting(rows: list[Any], notify: Any) -> None:
        groups.append(len(rows))
        submit(rows, notify)

    cache._writer.submit_many = counting  # type: ignore[method-assign]
    llm = ScriptedLLM(script=echo)

    async def main() -> None:
        memo = KeyMemo()
        await asyncio.gather(*(cache.request(llm, m, {}, keys=memo, durable=False)
                               for m in prompts(300)))
        await cache.barrier()

    asyncio.run(main())
    assert cache.count() == 300 and sum(groups) == 300
    assert len([g for g in groups if g]) <= 3  # the answers of a turn travel together


def test_a_group_larger_than_one_statement_is_stored_whole_and_in_order(
    cache: LLMResponseCache,
) -> None:
    from fastdistill import Generation

    async def main() -> None:
        for i in range(450):  # no await in between: one loop turn, one group
            await cache.aput(f"k{i}", Generation(text=f"t{i}", model="m"), wait=False)
        await cache.aput("k7", Generation(text="later", model="m"), wait=False)
        await cache.barrier()

    asyncio.run(main())
    assert cache.count() == 450
    assert [cache.get(f"k{i}").text for i in (0, 199, 200, 449)] == ["t0", "t199", "t200", "t449"]
    assert cache.get("k7").text == "later"  # the same key twice in a group: the later wins


def test_memo_keys_of_unusual_messages_equal_request_key() -> None:
    from types import MappingProxyType

    memo = KeyMemo()
    llm = ScriptedLLM(script=echo)
    plain = {"role": "user", "content": "h\u00e9llo"}
    for messages in (
        (plain,),  # a tuple
        [MappingProxyType(plain)],  # a mapping that is not a dict
        [{**plain, "path": Path("/a/b")}],  # a value only the fallback writes
    ):
        assert memo.key(llm, messages, {}) == request_key(llm, messages, {})
    assert memo.key(llm, (plain,), {}) == memo.key(llm, [dict(plain)], {})


def test_rows_leave_an_llm_task_only_once_their_answers_are_committed(tmp_path: Path) -> None:
    import sqlite3

    from fastdistill import Pipeline, Step
    from fastdistill.builtins.steps import LoadFromDicts
    from llm_helpers import Ask

    db = tmp_path / "cache.sqlite"
    seen: list[int] = []

    class Probe(Step):
        inputs = ("a",)

        def process(self, rows: list[dict[str, Any]], ctx: Any) -> list[dict[str, Any]]:
            with sqlite3.connect(db) as conn:  # another connection: sees committed entries only
                stored = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            seen.extend(r["id"] for r in rows)
            assert stored >= len(seen), (stored, len(seen))
            return rows

    llm = ScriptedLLM(script=echo, latency_s=0.002)
    data = [{"id": i, "q": f"q{i}"} for i in range(120)]
    with LLMResponseCache(db) as shared:
        result = Pipeline(
            "barrier",
            LoadFromDicts(data=data, batch_size=10)
            >> Ask(llm=llm, max_in_flight=16, input_batch_size=7)
            >> Probe(input_batch_size=5),
        ).run(tmp_path / "out", llm_cache=shared)
    assert result.kept == 120 and sorted(seen) == list(range(120))
