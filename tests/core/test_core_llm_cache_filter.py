"""A cache found empty skips the lookups that cannot hit (a Bloom filter of its own stores)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from fastdistill.cache import LLMResponseCache, request_key
from fastdistill.cache.filter import StoredKeys
from fastdistill.cache.keys import KeyMemo
from fastdistill.models import Generation
from fastdistill.testing import ScriptedLLM
from llm_helpers import counting_lookups


def echo(messages: Any) -> str:
    return f"answer to {messages[-1]['content']}"


def prompts(n: int, tag: str = "q") -> list[list[dict[str, Any]]]:
    return [[{"role": "user", "content": f"{tag} {i}"}] for i in range(n)]


def ask(cache: LLMResponseCache, llm: ScriptedLLM, asks: list[Any]) -> list[Generation]:
    async def all_of() -> list[Generation]:
        memo = KeyMemo()
        return list(await asyncio.gather(*(cache.request(llm, m, {}, keys=memo) for m in asks)))

    return asyncio.run(all_of())


def test_stored_keys_never_forget_and_rarely_claim() -> None:
    keys = StoredKeys(bits=1 << 16)
    added = [f"{i:064x}" for i in range(3000)]
    for k in added:
        keys.add(k)
    assert all(k in keys for k in added) and keys.added == 3000
    others = [f"other-{i}" for i in range(20000)]
    false_positives = sum(k in keys for k in others)
    # 2 probes, 3000 keys in 65536 bits: about 0.8 % expected
    assert false_positives < 0.03 * len(others)
    assert 7 not in keys  # not a key at all


def test_stored_keys_are_safe_to_add_from_threads() -> None:
    keys = StoredKeys(bits=1 << 12)
    names = [[f"t{t}-{i}" for i in range(2000)] for t in range(4)]
    threads = [threading.Thread(target=lambda ns=ns: [keys.add(n) for n in ns]) for ns in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert keys.added == 8000 and all(n in keys for ns in names for n in ns)


@pytest.mark.parametrize("bits", [0, 7, 1000, 1 << 33])
def test_filter_size_must_be_a_power_of_two(bits: int) -> None:
    with pytest.raises(ValueError, match="power of two from 8 to 2"):
        StoredKeys(bits=bits)


def test_first_run_on_an_empty_cache_queries_nothing_yet_finds_its_own_answers(
    tmp_path: Path,
) -> None:
    with LLMResponseCache(tmp_path / "c.sqlite") as cache:
        queries = counting_lookups(cache)
        llm = ScriptedLLM(script=echo)
        first = ask(cache, llm, prompts(200))
        assert llm.calls == 200 and not any(g.cached for g in first)
        assert queries == []  # every key certainly absent: no lookup query at all
        again = ask(cache, llm, prompts(200))
        assert llm.calls == 200 and all(g.cached for g in again)  # its own answers are found
        assert [g.text for g in again] == [g.text for g in first]
        assert sum(queries) == 200
        assert cache.count() == 200


def test_a_cache_with_entries_looks_every_key_up(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    llm = ScriptedLLM(script=echo)
    with LLMResponseCache(path) as earlier:
        ask(earlier, llm, prompts(50))
    with LLMResponseCache(path) as cache:
        queries = counting_lookups(cache)
        out = ask(cache, llm, prompts(50) + prompts(50, "new"))
        assert [g.cached for g in out] == [True] * 50 + [False] * 50
        assert queries == [100]  # found non-empty: the usual batched lookups
        assert llm.calls == 100


def test_an_entry_stored_before_the_first_lookup_keeps_lookups_on(tmp_path: Path) -> None:
    llm = ScriptedLLM(script=echo)
    asks = prompts(3)
    with LLMResponseCache(tmp_path / "c.sqlite") as cache:
        queries = counting_lookups(cache)
        gen = Generation(text="stored by hand", model="scripted", finish_reason="stop")
        assert cache.put(request_key(llm, asks[0], {}), gen)
        out = ask(cache, llm, asks)
        assert out[0].cached and out[0].text == "stored by hand"
        assert queries == [3] and llm.calls == 2


def test_an_answer_another_instance_stores_meanwhile_is_asked_again_consistently(
    tmp_path: Path,
) -> None:
    # the documented price of skipping lookups: B found the database empty, so an answer A
    # stores afterwards is not seen by B, which asks its own model; nothing is lost or broken
    path = tmp_path / "c.sqlite"
    with LLMResponseCache(path) as a, LLMResponseCache(path) as b:
        llm_a, llm_b = ScriptedLLM(script=echo), ScriptedLLM(script=echo)
        ask(b, llm_b, prompts(1, "b's first"))  # b's first lookup: empty
        ask(a, llm_a, prompts(5))
        out = ask(b, llm_b, prompts(5))
        assert llm_b.calls == 6 and not any(g.cached for g in out)
        assert [g.text for g in out] == [f"answer to q {i}" for i in range(5)]
    with LLMResponseCache(path) as later:  # one entry per request, readable by a new instance
        assert later.count() == 6
        assert all(g.cached for g in ask(later, ScriptedLLM(script=echo), prompts(5)))
