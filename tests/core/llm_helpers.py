"""Shared by the core tests of LLM tasks: a minimal task, and a lookup-query counter."""

from __future__ import annotations

from typing import Any

from fastdistill import Task
from fastdistill.cache import LLMResponseCache
from fastdistill.cache.aio import LookupBatcher
from fastdistill.testing import ScriptedLLM


class Ask(Task):
    """Asks ``llm`` the row's ``q``; the answer goes to ``a``."""

    inputs = ("q",)
    outputs = ("a",)
    llm: ScriptedLLM

    async def aprocess_row(self, row: dict[str, Any], ctx: Any) -> dict[str, Any]:
        gen = await ctx.agenerate(self.llm, [{"role": "user", "content": row["q"]}])
        return {**row, "a": gen.text}


def counting_lookups(cache: LLMResponseCache) -> list[int]:
    """Replace the cache's lookup batcher by one that records each query's size."""
    queries: list[int] = []
    fetch = cache._fetch_many

    def counting(keys: list[str]) -> dict[str, str]:
        queries.append(len(keys))
        return fetch(keys)

    cache._lookups = LookupBatcher(counting)
    return queries
