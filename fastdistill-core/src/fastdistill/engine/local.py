"""The local engine: streams batches between step threads through bounded transports."""

from __future__ import annotations

import datetime as _dt
import os
import socket
import threading
import time
from typing import Any

from fastdistill.context import StepContext
from fastdistill.engine.checkpoint import (
    STATE_DIR,
    StepCheckpoint,
    clear_checkpoints,
    read_state,
    write_state,
)
from fastdistill.engine.collect import RejectedSink, RowSink, StepStats
from fastdistill.engine.plan import Event, ExecutionPlan
from fastdistill.engine.workers import StepWorker
from fastdistill.errors import StepError
from fastdistill.pipeline.core import RunResult
from fastdistill.reports.build import write_reports
from fastdistill.storage import StorageBackend


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class LocalEngine:
    """Runs every step in its own thread of this process; LLM tasks run an asyncio loop that
    keeps ``max_in_flight`` requests going.  Memory is bounded by the transports' ``maxsize``.

    With checkpoints on (the default), every processed batch is saved under the output's
    ``.fastdistill/`` folder; a rerun into the same output replays what is recorded and only
    computes the rest.  A finished identical run is returned without running any step.
    """

    component_name = "local"

    def run(self, plan: ExecutionPlan) -> RunResult:
        """Run the plan to completion (or cancellation) and write outputs and reports."""
        storage = plan.storage
        if not plan.resume:
            clear_checkpoints(storage)
        state = read_state(storage)
        if (
            plan.resume
            and state is not None
            and state.get("status") == "completed"
            and state.get("pipeline_signature") == plan.pipeline_signature
        ):
            finished = _finished_result(plan, state)
            # rows lost to provider errors or timeouts are retried rather than reused
            if finished is not None and not finished.quality.get("provider_errors"):
                return finished
        if storage.exists(".spool"):
            storage.rm(".spool", recursive=True)  # left by a killed attempt
        write_state(storage, {
            "pipeline": plan.pipeline.name,
            "pipeline_signature": plan.pipeline_signature,
            "step_signatures": plan.signatures,
            "limit": plan.limit,
            "run_id": plan.run_id,
            "status": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _now(),
            "attempts": int((state or {}).get("attempts", 0)) + 1,
        })
        return self._execute(plan)

    def _execute(self, plan: ExecutionPlan) -> RunResult:
        pipeline = plan.pipeline
        storage = plan.storage
        t_start = time.perf_counter()
        leaves = pipeline.leaves()
        sinks: dict[str, RowSink] = {
            leaf: RowSink(
                storage, "dataset.jsonl" if len(leaves) == 1 else f"dataset.{leaf}.jsonl",
                keep_private=False,
            )
            for leaf in leaves
        }
        rejected = RejectedSink(storage)
        inboxes: dict[str, Any] = {
            name: plan.transport_factory(maxsize=plan.queue_size)
            for name in plan.order
            if pipeline.upstream(name)
        }
        stats = {name: StepStats(name) for name in plan.order}
        contexts: dict[str, StepContext] = {}
        workers: list[StepWorker] = []
        totals: dict[str, int | None] = {}
        for name in plan.order:
            ctx = _context(plan, name)
            contexts[name] = ctx
            totals[name] = _total(pipeline.steps[name], ctx)
            sink = sinks.get(name)
            checkpoint = (
                StepCheckpoint(storage, plan.signatures[name], name,
                               tuple(pipeline.steps[name].state_columns()))
                if plan.checkpoint else None
            )
            workers.append(
                StepWorker(
                    plan, name, ctx, inboxes.get(name),
                    [inboxes[d] for d in pipeline.downstream(name)],
                    rejected, stats[name], sink.add if sink is not None else None, checkpoint,
                )
            )
        plan.emit(Event("run_started", data={"steps": list(plan.order), "totals": totals,
                                             "run_id": plan.run_id, "output": storage.url}))
        interrupted = _run_threads(plan, workers)
        for name in plan.order:
            plan.placement.release(name, 0)
        for box in inboxes.values():
            box.cleanup()
        failures = [w for w in workers if w.error is not None]
        cancelled = plan.cancel.is_set() or interrupted
        wall = time.perf_counter() - t_start
        for sink in (*sinks.values(), rejected):
            sink.finalize()
        paths = {leaf: storage.location(sink.rel) for leaf, sink in sinks.items()}
        rejected_path = storage.location(rejected.rel)
        if storage.exists(".spool") and not storage.listdir(".spool"):
            storage.rm(".spool", recursive=True)
        kept = sum(s.count for s in sinks.values())
        quality, timing = write_reports(
            plan, stats, contexts, rejected, kept=kept, wall_s=wall, cancelled=cancelled,
            failed=[w.name for w in failures],
        )
        status = "failed" if failures else ("cancelled" if cancelled else "completed")
        state = read_state(storage) or {}
        write_state(storage, {**state, "status": status, "finished": _now(),
                              "kept": kept, "rejected": rejected.count,
                              "dataset_path": paths[leaves[0]], "rejected_path": rejected_path})
        plan.emit(Event("run_finished", data={"kept": kept, "rejected": rejected.count,
                                              "wall_s": wall, "cancelled": cancelled}))
        if failures:
            first = failures[0]
            assert first.error is not None
            raise StepError(
                f"step {first.name!r} failed: {type(first.error).__name__}: {first.error}. "
                f"Rows finished before the failure are kept in {storage.url}; rerun to resume"
            ) from first.error
        return RunResult(
            run_id=plan.run_id,
            output=storage.url,
            dataset_path=paths[leaves[0]],
            rejected_path=rejected_path,
            kept=kept,
            rejected=rejected.count,
            quality=quality,
            timing=timing,
            cancelled=cancelled,
        )


def _context(plan: ExecutionPlan, name: str) -> StepContext:
    step = plan.pipeline.steps[name]
    device = plan.placement.assign(name, 0, needs_device=bool(getattr(step, "needs_device", False)))
    ctx = StepContext(
        run_id=plan.run_id,
        step_name=name,
        storage=plan.storage,
        params=_runtime_params(step),
        device=device,
        base_dir=plan.pipeline.base_dir,
        limit=plan.limit,
        cancel_event=plan.cancel,
    )
    if plan.llm_cache is not None and hasattr(ctx, "llm_cache"):
        ctx.llm_cache = plan.llm_cache
    return ctx


def _total(step: Any, ctx: StepContext) -> int | None:
    total = getattr(step, "total_rows", None)
    if not callable(total):
        return None
    try:
        value = total(ctx)
    except Exception:
        return None
    return value if isinstance(value, int) else None


def _run_threads(plan: ExecutionPlan, workers: list[StepWorker]) -> bool:
    """Run the workers; on Ctrl+C cancel cleanly and return True."""
    threads = [
        threading.Thread(target=w.run, name=f"fastdistill-{w.name}", daemon=True) for w in workers
    ]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.2)
    except KeyboardInterrupt:
        plan.cancel.set()
        for t in threads:
            t.join(timeout=30)
        return True
    return False


def _finished_result(plan: ExecutionPlan, state: dict[str, Any]) -> RunResult | None:
    """The stored result of a finished identical run, or ``None`` if its files are gone."""
    storage = plan.storage
    try:
        quality = storage.read_json("quality_report.json")
        timing = storage.read_json("timing_report.json")
    except (OSError, ValueError):
        return None
    dataset, rejected = state.get("dataset_path"), state.get("rejected_path")
    dataset_rel = _relative(storage, str(dataset)) if dataset else None
    if dataset_rel is None or not rejected or not storage.exists(dataset_rel):
        return None
    plan.emit(Event("run_started", data={"steps": [], "totals": {}, "run_id": state.get("run_id"),
                                         "output": storage.url, "reused": True}))
    plan.emit(Event("run_finished", data={"kept": quality.get("kept"), "reused": True}))
    return RunResult(
        run_id=str(state.get("run_id")),
        output=storage.url,
        dataset_path=str(dataset),
        rejected_path=str(rejected),
        kept=int(quality.get("kept", 0)),
        rejected=int(quality.get("rejected", 0)),
        quality=quality,
        timing=timing,
        reused=True,
    )


def _runtime_params(step: Any) -> dict[str, Any]:
    info = getattr(type(step), "runtime_parameters_info", {})
    return {name: getattr(step, name) for name in info}


def _relative(storage: StorageBackend, location: str) -> str | None:
    """``location`` (as :meth:`StorageBackend.location` wrote it) relative to the storage root;
    ``None`` when it lies outside (the state was written for another folder)."""
    root = storage.location().rstrip("/") + "/"
    return location[len(root):] if location.startswith(root) else None


__all__ = ["STATE_DIR", "LocalEngine"]
