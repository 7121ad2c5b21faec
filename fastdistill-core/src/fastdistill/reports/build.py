"""The three reports every run writes: manifests per stage, quality report, timing report.

They are written by the engine (control plane), not by steps a user must remember to add.
"""

from __future__ import annotations

import hashlib
import statistics
from typing import TYPE_CHECKING, Any

from fastdistill.serialization.migrations import CURRENT_SCHEMA_VERSION

if TYPE_CHECKING:
    from fastdistill.context import StepContext
    from fastdistill.engine.collect import RejectedSink, StepStats
    from fastdistill.engine.plan import ExecutionPlan

REPORT_SCHEMA_VERSION = 1

#: reject reasons that mean the teacher/provider failed (counted apart from quality rejections)
PROVIDER_REASONS = ("provider_error", "timeout")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return round(ordered[k], 6)


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0}
    return {
        "count": len(values),
        "mean": round(statistics.fmean(values), 6),
        "min": round(min(values), 6),
        "p50": _pct(values, 0.5),
        "p90": _pct(values, 0.9),
        "max": round(max(values), 6),
    }


def manifest(plan: ExecutionPlan, name: str, st: StepStats) -> dict[str, Any]:
    """The manifest of one stage (a step's output)."""
    cols = sorted(st.columns)
    return {
        "run_id": plan.run_id,
        "stage": name,
        "component": plan.pipeline.component_names.get(name, type(plan.pipeline.steps[name]).__name__),
        "count": st.rows_out,
        "rejected": st.rejected,
        "columns": cols,
        "field_hash": hashlib.sha256("\x1f".join(cols).encode()).hexdigest()[:16],
        "min_sample_id": st.min_sample_id,
        "max_sample_id": st.max_sample_id,
        "step_signature": plan.signatures.get(name),
        "schema_version": REPORT_SCHEMA_VERSION,
        "pipeline_schema_version": CURRENT_SCHEMA_VERSION,
    }


def _undelivered_columns(plan: ExecutionPlan, stats: dict[str, StepStats]) -> list[str]:
    """A warning per step whose output rows never held a column the step declares."""
    out: list[str] = []
    for name in plan.order:
        step, st = plan.pipeline.steps[name], stats[name]
        if st.rows_out == 0:
            continue
        try:
            declared = step.output_columns()
        except Exception:  # a dynamic contract that cannot be computed now: nothing to check
            continue
        missing = [c for c in declared or () if not c.startswith("_") and c not in st.columns]
        if missing:
            out.append(
                f"step {name!r} declares output column(s) {', '.join(missing)} but none of its "
                f"{st.rows_out} output rows (sampled per batch) had them: check its process() "
                "or its declared outputs"
            )
    return out


def write_reports(
    plan: ExecutionPlan,
    stats: dict[str, StepStats],
    contexts: dict[str, StepContext],
    rejected: RejectedSink,
    *,
    kept: int,
    wall_s: float,
    cancelled: bool,
    failed: list[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write ``manifests/<step>.json``, ``quality_report.json``, ``timing_report.json``."""
    storage = plan.storage
    for name in plan.order:
        storage.write_json(f"manifests/{name}.json", manifest(plan, name, stats[name]))
    total = kept + rejected.count
    gates: dict[str, Any] = {}
    llm: dict[str, Any] = {}
    untracked: dict[str, int] = {}
    for name in plan.order:
        step = plan.pipeline.steps[name]
        counters = contexts[name].metrics.counters()
        if counters.get("untracked_rows"):
            untracked[name] = int(counters["untracked_rows"])
        obs = contexts[name].metrics.observations()
        if getattr(step, "is_gate", False):
            gate: dict[str, Any] = {k: v for k, v in counters.items() if not k.startswith("rejected.")}
            gate.update(type(step).summarize_metrics(counters))
            gate["rejected"] = rejected.by_step.get(name, {})
            gates[name] = gate
        if "requests" in counters or "completion_tokens" in obs:
            llm[name] = {"counters": counters, "completion_tokens": _stats(obs.get("completion_tokens", []))}
    reasons = dict(sorted(rejected.reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    warnings: list[str] = []
    rows_in = sum(stats[g].rows_in for g in plan.pipeline.generators())
    if rows_in == 0:
        warnings.append("the input produced no rows: check the loader's path and --limit")
    elif kept == 0 and not cancelled:
        top = ", ".join(f"{k} ({v})" for k, v in list(reasons.items())[:3])
        warnings.append(f"no row was kept: all {rejected.count} were rejected ({top})")
    warnings.extend(_undelivered_columns(plan, stats))
    for name, extra in untracked.items():
        warnings.append(
            f"step {name!r} returned {extra} row(s) besides its input rows (without the "
            "engine's '_row_id', or with an id of their own); they were not kept (build "
            "output rows from input rows)")
    cache_report = _cache_stats(plan, contexts)
    if cache_report["disabled_reason"]:
        warnings.append(
            f"the LLM response cache {cache_report['path']} was unusable "
            f"({cache_report['disabled_reason']}): requests went to the model uncached")
    quality = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "run_id": plan.run_id,
        "pipeline": plan.pipeline.name,
        "status": "failed" if failed else ("cancelled" if cancelled else "completed"),
        "rows_in": rows_in,
        "kept": kept,
        "rejected": rejected.count,
        "keep_rate": round(kept / total, 6) if total else None,
        "reject_reasons": reasons,
        "rejected_by_step": rejected.by_step,
        "provider_errors": sum(reasons.get(r, 0) for r in PROVIDER_REASONS),
        "empty_outputs": reasons.get("empty_output", 0),
        "gates": gates,
        "llm": llm,
        "warnings": warnings,
    }
    steps_timing: dict[str, Any] = {}
    for name in plan.order:
        st = stats[name]
        active = (
            (st.finished - st.started) if st.started is not None and st.finished is not None else 0.0
        )
        obs = contexts[name].metrics.observations()
        tokens = sum(obs.get("completion_tokens", []))
        steps_timing[name] = {
            "rows_in": st.rows_in,
            "rows_out": st.rows_out,
            "rejected": st.rejected,
            "batches": st.batches,
            "batch_latency_s": {
                "p50": _pct(st.batch_latencies, 0.5),
                "p90": _pct(st.batch_latencies, 0.9),
                "p95": _pct(st.batch_latencies, 0.95),
            },
            "busy_s": round(st.busy_s, 6),
            "active_s": round(active, 6),
            "queue_wait_s": round(st.queue_wait_s, 6),
            "rows_per_s": round(st.rows_out / active, 3) if active > 0 else None,
            "llm_tokens_per_s": round(tokens / active, 3) if tokens and active > 0 else None,
            "llm_completion_tokens": int(tokens) if tokens else 0,
            "llm_latency_s": _stats(obs.get("latency_s", [])) if "latency_s" in obs else None,
        }
    timing = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "run_id": plan.run_id,
        "pipeline": plan.pipeline.name,
        "engine": "local",
        "wall_s": round(wall_s, 6),
        "rows_per_s": round(total / wall_s, 3) if wall_s > 0 else None,
        "steps": steps_timing,
        "llm_cache": cache_report,
    }
    storage.write_json("quality_report.json", quality)
    storage.write_json("timing_report.json", timing)
    try:
        storage.write_bytes("pipeline.yaml", pipeline_document_bytes(plan))
    except Exception as exc:  # a pipeline built in Python with unregistered steps
        storage.write_text("pipeline.yaml", f"# not serialisable: {exc}\n")
    return quality, timing


#: inline data longer than this is written as JSON (a YAML subset), not through the YAML dumper
BIG_INLINE_ROWS = 1000


class _DocView:
    """What :func:`pipeline_to_document` reads from a pipeline, with some steps swapped."""

    def __init__(self, pipeline: Any, swapped: dict[str, Any]) -> None:
        self.name = pipeline.name
        self.description = pipeline.description
        self.steps = {n: swapped.get(n, s) for n, s in pipeline.steps.items()}
        self.upstream = pipeline.upstream


def pipeline_document_bytes(plan: ExecutionPlan) -> bytes:
    """``pipeline.yaml``: YAML; with large inline data (``data`` lists of more than
    :data:`BIG_INLINE_ROWS` rows), the same document as indented JSON, which YAML loaders read
    as YAML (the YAML dumper takes seconds for 100k rows)."""
    from fastdistill.serialization.document import dump_yaml, pipeline_to_document

    pipeline = plan.pipeline
    big: dict[str, list[Any]] = {}
    for name, step in pipeline.steps.items():
        data = getattr(step, "data", None)
        if isinstance(data, list) and len(data) > BIG_INLINE_ROWS:
            big[name] = data
    if not big:
        return dump_yaml(pipeline.to_document(plan.registry)).encode("utf-8")
    import orjson

    swapped = {n: pipeline.steps[n].model_copy(update={"data": []}) for n in big}
    doc = pipeline_to_document(_DocView(pipeline, swapped), plan.registry)  # type: ignore[arg-type]
    for entry in doc["steps"]:
        if entry["name"] in big:
            entry.setdefault("params", {})["data"] = big[entry["name"]]
    body = orjson.dumps(
        doc, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    )
    return b"# JSON, which is YAML: written so because of large inline data\n" + body + b"\n"


def _cache_stats(plan: ExecutionPlan, contexts: dict[str, StepContext]) -> dict[str, Any]:
    """LLM response cache hits and misses of this run, per step and in total."""
    per_step = {}
    for name, ctx in contexts.items():
        c = ctx.metrics.counters()
        if "llm_cache.hits" in c or "llm_cache.misses" in c or "llm_calls" in c:
            misses = int(c.get("llm_cache.misses", 0))
            per_step[name] = {"hits": int(c.get("llm_cache.hits", 0)), "misses": misses,
                              # requests that reached a model: the misses, or every request
                              # made without the cache
                              "calls": misses + int(c.get("llm_calls", 0))}
    cache = plan.llm_cache
    info = cache.stats() if cache is not None else {}
    return {
        # False also when the cache was found unusable during the run (requests went on)
        "enabled": cache is not None and bool(info.get("enabled", True)),
        "disabled_reason": info.get("disabled_reason"),
        "path": str(info.get("path")) if cache is not None else None,
        "hits": sum(v["hits"] for v in per_step.values()),
        "misses": sum(v["misses"] for v in per_step.values()),
        "calls": sum(v["calls"] for v in per_step.values()),
        "steps": per_step,
    }
