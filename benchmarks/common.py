"""Shared pieces of the fastdistill-side benchmark scripts.

Row shapes are those of the distilabel peer scripts (``../shared/bench/distilabel/common.py``):
``make_rows`` for P1/P5, ``make_instructions`` for P2.  ``AddLength`` and ``Upper`` are the
same cheap row steps as the peer's; ``KeepColumns`` is core's built-in.

``Clock`` is an ``on_event`` listener that timestamps the first and last ``progress`` event
of every step (``time.perf_counter``), so a script can report start-up (``run()`` call -> first
batch out of a step) without touching the engine.  Every script prints one
``BENCH_RESULT {json}`` line, like the peer scripts.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

from fastdistill import GeneratorStep, Step, StepContext

Row = dict[str, Any]


def make_rows(n: int, prefix: str = "Write one sentence about item") -> list[Row]:
    """The peer's B1 rows."""
    return [{"id": i, "text": f"{prefix} row={i} lorem ipsum dolor sit amet"} for i in range(n)]


def make_instructions(n: int) -> list[Row]:
    """The peer's B2 rows."""
    return [{"id": i, "instruction": f"Explain topic row={i} in one sentence."} for i in range(n)]


class AddLength(Step):
    """``n_chars`` = len(text) (in place, like the peer's step)."""

    inputs = ("text",)
    outputs = ("n_chars",)

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        for row in rows:
            row["n_chars"] = len(row["text"])
        return rows


class Upper(Step):
    """``text_upper`` = text.upper()."""

    inputs = ("text",)
    outputs = ("text_upper",)

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        for row in rows:
            row["text_upper"] = row["text"].upper()
        return rows


class SynthRows(GeneratorStep):
    """``make_rows`` rows generated lazily (P5 flatness: input data not held in memory)."""

    n: int = 1000

    def output_columns(self) -> list[str]:
        return ["id", "text"]

    def total_rows(self, ctx: StepContext) -> int | None:
        return self.n

    def generate(self, ctx: StepContext) -> Iterator[list[Row]]:
        prefix = "Write one sentence about item"
        for start in range(0, self.n, self.batch_size):
            stop = min(self.n, start + self.batch_size)
            yield [{"id": i, "text": f"{prefix} row={i} lorem ipsum dolor sit amet"}
                   for i in range(start, stop)]


class Clock:
    """``on_event`` listener: first/last ``progress`` time of each step (perf_counter), and the
    process's peak RSS so far when ``track``'s last batch came out (memory of the streaming
    loop, before the engine writes its outputs)."""

    def __init__(self, track: str | None = None) -> None:
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.events = 0
        self.track = track
        self.maxrss_loop_mb: float | None = None

    def __call__(self, event: Any) -> None:
        if event.kind != "progress":
            return
        now = time.perf_counter()
        self.events += 1
        self.first.setdefault(event.step, now)
        self.last[event.step] = now
        if event.step == self.track:
            self.maxrss_loop_mb = maxrss_mb()


def maxrss_mb() -> float:
    """Peak RSS of this process so far, MB (Linux: ru_maxrss is in KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def scratch_dir(prefix: str) -> str:
    """A fresh work dir under ``$DISTIBENCH/scratch`` (removed by the caller)."""
    base = os.path.join(os.environ.get("DISTIBENCH", os.path.join(tempfile.gettempdir(), "distibench")),
                        "scratch")
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def cache_args(off: bool, work: str) -> dict[str, Any]:
    """Keep the LLM response cache out of the user's ``~/.cache``: a fresh folder per run (so
    every request is a miss, as in a first run); ``off``: ``run(llm_cache=False)``."""
    os.environ["FASTDISTILL_CACHE_DIR"] = os.path.join(work, "llm-cache")
    return {"llm_cache": False} if off else {}


def emit(result: dict[str, Any]) -> None:
    """Print the one line the harness parses."""
    print("BENCH_RESULT " + json.dumps(result, default=str), flush=True)
