"""The local engine: streams batches between step threads through bounded transports."""

from __future__ import annotations

import threading
import time
from typing import Any

from fastdistill.context import StepContext
from fastdistill.engine.collect import RejectedSink, RowSink, StepStats
from fastdistill.engine.plan import Event, ExecutionPlan
from fastdistill.engine.workers import StepWorker
from fastdistill.errors import StepError
from fastdistill.pipeline.core import RunResult
from fastdistill.reports.build import write_reports


class LocalEngine:
    """Runs every step in its own thread of this process; LLM tasks run an asyncio loop that
    keeps ``max_in_flight`` requests going.  Memory is bounded by the transports' ``maxsize``."""

    component_name = "local"

    def run(self, plan: ExecutionPlan) -> RunResult:
        """Run the plan to completion (or cancellation) and write outputs and reports."""
        pipeline = plan.pipeline
        storage = plan.storage
        t_start = time.perf_counter()
        leaves = pipeline.leaves()
        sinks: dict[str, RowSink] = {}
        for leaf in leaves:
            rel = "dataset.jsonl" if len(leaves) == 1 else f"dataset.{leaf}.jsonl"
            sinks[leaf] = RowSink(storage, rel, keep_private=False)
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
            step = pipeline.steps[name]
            device = plan.placement.assign(
                name, 0, needs_device=bool(getattr(step, "needs_device", False))
            )
            ctx = StepContext(
                run_id=plan.run_id,
                step_name=name,
                storage=storage,
                params=_runtime_params(step),
                device=device,
                base_dir=pipeline.base_dir,
                limit=plan.limit,
                cancel_event=plan.cancel,
            )
            contexts[name] = ctx
            total = getattr(step, "total_rows", None)
            if callable(total):
                try:
                    totals[name] = total(ctx)
                except Exception:
                    totals[name] = None
            sink = sinks.get(name)
            workers.append(
                StepWorker(
                    plan,
                    name,
                    ctx,
                    inboxes.get(name),
                    [inboxes[d] for d in pipeline.downstream(name)],
                    rejected,
                    stats[name],
                    sink.add if sink is not None else None,
                )
            )
        plan.emit(Event("run_started", data={"steps": list(plan.order), "totals": totals,
                                             "run_id": plan.run_id, "output": storage.url}))
        threads = [
            threading.Thread(target=w.run, name=f"fastdistill-{w.name}", daemon=True)
            for w in workers
        ]
        for t in threads:
            t.start()
        interrupted = False
        try:
            for t in threads:
                while t.is_alive():
                    t.join(timeout=0.2)
        except KeyboardInterrupt:
            interrupted = True
            plan.cancel.set()
            for t in threads:
                t.join(timeout=30)
        for name in plan.order:
            plan.placement.release(name, 0)
        for box in inboxes.values():
            box.cleanup()
        failures = [w for w in workers if w.error is not None]
        cancelled = plan.cancel.is_set()
        wall = time.perf_counter() - t_start
        paths = {leaf: _url(storage, sink.finalize()) for leaf, sink in sinks.items()}
        rejected_path = _url(storage, rejected.finalize())
        if storage.exists(".spool") and not storage.fs.ls(storage.path(".spool")):
            storage.fs.rm(storage.path(".spool"), recursive=True)
        kept = sum(s.count for s in sinks.values())
        quality, timing = write_reports(
            plan, stats, contexts, rejected, kept=kept, wall_s=wall, cancelled=cancelled,
            failed=[w.name for w in failures],
        )
        plan.emit(Event("run_finished", data={"kept": kept, "rejected": rejected.count,
                                              "wall_s": wall, "cancelled": cancelled}))
        if failures:
            first = failures[0]
            assert first.error is not None
            raise StepError(
                f"step {first.name!r} failed: {type(first.error).__name__}: {first.error}. "
                f"Rows finished before the failure are kept in {storage.url}"
            ) from first.error
        result = RunResult(
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
        if interrupted:
            result.cancelled = True
        return result


def _runtime_params(step: Any) -> dict[str, Any]:
    info = getattr(type(step), "runtime_parameters_info", {})
    return {name: getattr(step, name) for name in info}


def _url(storage: Any, path: str) -> str:
    """A path fsspec can open again: local paths stay plain, others keep their protocol."""
    return path if storage.local_path() is not None else str(storage.fs.unstrip_protocol(path))
