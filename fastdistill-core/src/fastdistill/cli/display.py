"""Progress display and end-of-run summary for the CLI (rich)."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fastdistill.engine.plan import Event


class ProgressDisplay:
    """Receives engine events (from worker threads) and draws one bar per step."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description:<18}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("kept {task.fields[out]:>6}  rejected {task.fields[rej]:>5}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
            disable=not enabled,
        )
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}

    def __enter__(self) -> ProgressDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, event: Event) -> None:
        with self._lock:
            if event.kind == "run_started":
                totals = event.data.get("totals", {})
                known = [t for t in totals.values() if t is not None]
                overall = sum(known) if known else None
                self.console.print(
                    f"run [bold]{event.data.get('run_id')}[/] → {event.data.get('output')}"
                )
                for name in event.data.get("steps", []):
                    total = totals.get(name, overall)
                    self._tasks[name] = self.progress.add_task(name, total=total, out=0, rej=0)
                    self._counts[name] = [0, 0]
            elif event.kind == "progress" and event.step in self._tasks:
                c = self._counts[event.step]
                c[0] += event.rows_out
                c[1] += event.rejected
                self.progress.update(
                    self._tasks[event.step], advance=event.rows_in, out=c[0], rej=c[1]
                )
            elif event.kind == "step_finished" and event.step in self._tasks:
                task = self._tasks[event.step]
                done = self.progress.tasks[task].completed
                self.progress.update(task, total=max(done, 1) if done else 0, completed=done)


def summary_tables(result: Any) -> list[Table]:
    """Per-step table and quality table for a finished run."""
    timing, quality = result.timing, result.quality
    steps = Table(title="steps", title_justify="left")
    for col in ("step", "in", "kept", "rejected", "rows/s", "p50 batch s", "queue wait s"):
        steps.add_column(col, justify="right" if col != "step" else "left")
    for name, t in timing.get("steps", {}).items():
        steps.add_row(
            name,
            str(t["rows_in"]),
            str(t["rows_out"]),
            str(t["rejected"]),
            "-" if t["rows_per_s"] is None else f"{t['rows_per_s']:.1f}",
            "-" if t["batch_latency_s"]["p50"] is None else f"{t['batch_latency_s']['p50']:.4f}",
            f"{t['queue_wait_s']:.2f}",
        )
    q = Table(title="quality", title_justify="left", show_header=False)
    q.add_column("metric")
    q.add_column("value", justify="right")
    q.add_row("kept", str(quality.get("kept")))
    q.add_row("rejected", str(quality.get("rejected")))
    rate = quality.get("keep_rate")
    q.add_row("keep rate", "-" if rate is None else f"{rate:.1%}")
    for reason, n in quality.get("reject_reasons", {}).items():
        q.add_row(f"  {reason}", str(n))
    for gate, metrics in quality.get("gates", {}).items():
        for key, value in metrics.items():
            if key.endswith("_rate") and isinstance(value, (int, float)):
                q.add_row(f"{gate}.{key}", f"{value:.1%}")
    for name, value in teacher_rows(timing, bool(getattr(result, "reused", False))):
        q.add_row(name, value)
    q.add_row("wall time", f"{timing.get('wall_s', 0):.1f} s")
    return [steps, q]


def teacher_rows(timing: dict[str, Any], reused: bool) -> list[tuple[str, str]]:
    """The summary's "teacher calls" (requests that reached a model) and cache hits."""
    if reused:  # the reports are the earlier run's; this one asked nothing
        return [("teacher calls", "0 now (finished run reused; reports are of that run)")]
    cache = timing.get("llm_cache") or {}
    calls = int(cache.get("calls", cache.get("misses", 0)))
    if cache.get("enabled"):  # opened only for a pipeline with LLM tasks
        hits = int(cache.get("hits", 0))
        note = "" if hits or calls else " (rows replayed from checkpoints)"
        return [("teacher calls", f"{calls}{note}"), ("llm cache hits", str(hits))]
    if calls:  # no response cache: every request went to the model
        return [("teacher calls", str(calls))]
    return []
