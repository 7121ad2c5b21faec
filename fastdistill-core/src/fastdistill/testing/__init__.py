"""Helpers for testing steps, models and plugins (public; import only in tests).

``run_step(step, rows)`` runs one step on a batch outside any pipeline and returns the kept rows
and the rejections.  ``ScriptedLLM`` is a model whose answers (and failures) are scripted.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from fastdistill.context import StepContext
from fastdistill.models import LLM, Generation, Message
from fastdistill.rows import Rejection, Row
from fastdistill.step import GeneratorStep, Step
from fastdistill.storage import StorageBackend


def make_context(
    step_name: str = "step",
    *,
    root: str | Path | None = None,
    base_dir: str | Path | None = None,
    limit: int | None = None,
) -> StepContext:
    """A :class:`StepContext` with storage in ``root`` (a new temporary directory by default)."""
    root = root or tempfile.mkdtemp(prefix="fastdistill-test-")
    return StepContext(
        run_id="test-run",
        step_name=step_name,
        storage=StorageBackend(root),
        base_dir=Path(base_dir) if base_dir else Path.cwd(),
        limit=limit,
    )


def run_step(
    step: Step, rows: Sequence[Row] = (), ctx: StepContext | None = None
) -> tuple[list[Row], list[tuple[Row, Rejection]]]:
    """Run ``step`` on ``rows`` (or generate, for a generator) with load/unload around it."""
    ctx = ctx or make_context(step.name or type(step).__name__)
    step.load(ctx)
    try:
        if isinstance(step, GeneratorStep):
            kept = [r for batch in step.generate(ctx) for r in batch]
        else:
            kept = list(step.process([dict(r) for r in rows], ctx))
    finally:
        step.unload()
    return kept, ctx.drain_rejections()


class ScriptedLLM(LLM):
    """A model whose answer is computed by ``script(messages)``; for unit tests.

    ``script`` returns a string (the answer), a :class:`Generation` (full control, e.g. an
    error), or raises (the task must turn that into a rejected row).  ``latency_s`` sleeps
    asynchronously before answering.  ``calls`` counts requests.
    """

    script: Callable[[Sequence[Message]], Any] = Field(default=lambda messages: "ok")
    latency_s: float = 0.0
    name_: str = "scripted"
    #: stands for the script in :meth:`identity` (cache keys); default: the script's name
    cache_identity: str | None = None
    calls: int = 0

    @property
    def model_name(self) -> str:
        """The scripted model's name."""
        return self.name_

    def identity(self) -> dict[str, Any]:
        """Includes the script, so two scripted models never share cached answers (a lambda
        or a nested function is unique to this process)."""
        script = self.script
        name = f"{getattr(script, '__module__', '?')}.{getattr(script, '__qualname__', '?')}"
        if "<" in name:
            name += f"@{id(script)}"
        if self.cache_identity is not None:
            name = self.cache_identity
        return {**super().identity(), "script": name}

    async def agenerate(self, messages: Sequence[Message], **overrides: Any) -> Generation:
        """Answer from the script."""
        self.calls += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        out = self.script(messages)
        if isinstance(out, Generation):
            return out
        text = str(out)
        return Generation(
            text=text,
            model=self.name_,
            finish_reason="stop",
            usage={"prompt_tokens": sum(len(str(m.get("content", ""))) for m in messages),
                   "completion_tokens": len(text)},
        )
