"""Rows rejected for a passing outage (provider_error, timeout) are retried on the next run;
quality rejections and answered rows are replayed, never recomputed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastdistill import Pipeline, Reason, Task
from fastdistill.builtins.steps import LoadFromDicts
from fastdistill.testing import ScriptedLLM


class Ask(Task):
    llm: ScriptedLLM

    async def aprocess_row(self, row: dict, ctx: Any) -> dict | None:
        if row["id"] % 4 == 0:
            ctx.reject(row, Reason.RULE_FAILED, "not wanted")
            return None
        try:
            gen = await self.llm.agenerate([{"role": "user", "content": str(row["id"])}])
        except ConnectionError as exc:
            ctx.reject(row, Reason.PROVIDER_ERROR, str(exc))
            return None
        return {**row, "answer": gen.text}


def test_provider_errors_are_retried_on_rerun(tmp_path: Path) -> None:
    calls: list[str] = []
    outage = {"on": True}

    def answer(messages: Any) -> str:
        text = messages[-1]["content"]
        calls.append(text)
        if outage["on"] and int(text) % 2 == 1:
            raise ConnectionError("503 from the gateway")
        return "ok"

    rows = [{"id": i} for i in range(12)]
    out = tmp_path / "out"
    llm = ScriptedLLM(script=answer)

    def pipeline() -> Pipeline:
        return Pipeline("t", LoadFromDicts(data=rows) >> Ask(llm=llm))

    r1 = pipeline().run(out, llm_cache=False)
    assert r1.quality["reject_reasons"] == {"provider_error": 6, "rule_failed": 3}
    assert len(calls) == 9
    outage["on"] = False  # the outage is over; nothing in the pipeline changed
    calls.clear()
    r2 = pipeline().run(out, llm_cache=False)
    assert not r2.reused
    assert r2.quality["reject_reasons"] == {"rule_failed": 3} and r2.kept == 9
    # only the rows lost to the outage were asked again; answered rows were replayed
    assert sorted(calls, key=int) == ["1", "3", "5", "7", "9", "11"]
    calls.clear()
    r3 = pipeline().run(out, llm_cache=False)
    assert r3.reused and calls == []
