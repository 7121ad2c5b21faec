"""The execution plan handed to an engine, the ``ExecutionEngine`` protocol, and progress events."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from fastdistill.placement import PlacementStrategy
from fastdistill.storage import StorageBackend

if TYPE_CHECKING:
    from fastdistill.pipeline.core import Pipeline, RunResult
    from fastdistill.registry import Registry


@dataclass(frozen=True)
class Event:
    """A progress event.  ``kind`` is one of ``run_started``, ``progress``, ``step_finished``,
    ``run_finished``.  ``progress`` carries row deltas for one step."""

    kind: str
    step: str | None = None
    rows_in: int = 0
    rows_out: int = 0
    rejected: int = 0
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ExecutionPlan:
    """Everything an engine needs to run a validated pipeline."""

    pipeline: Pipeline
    registry: Registry
    run_id: str
    storage: StorageBackend
    order: list[str]
    signatures: dict[str, str]
    transport_factory: Callable[..., Any]
    placement: PlacementStrategy
    limit: int | None = None
    on_event: Callable[[Event], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    queue_size: int = 8
    #: reuse checkpoints of earlier attempts in the same output folder
    resume: bool = True
    #: write step checkpoints (needed to resume a killed run)
    checkpoint: bool = True
    #: LLM response cache handed to every step context (``None``: off)
    llm_cache: Any = None

    @property
    def pipeline_signature(self) -> str:
        """Hash of every step signature and the row limit: equal means same work."""
        payload = {"steps": self.signatures, "limit": self.limit}
        return hashlib.sha256(_canonical(payload)).hexdigest()[:16]

    def emit(self, event: Event) -> None:
        """Send an event to the listener, if any (a failing listener never stops the run)."""
        if self.on_event is not None:
            with contextlib.suppress(Exception):  # progress display must not break a run
                self.on_event(event)


@runtime_checkable
class ExecutionEngine(Protocol):
    """Runs an :class:`ExecutionPlan` and returns the run's result."""

    def run(self, plan: ExecutionPlan) -> RunResult:
        """Execute the plan; write dataset, rejected set and reports to ``plan.storage``."""
        ...


def _canonical(obj: Any) -> bytes:
    from fastdistill.engine.codec import canonical

    return canonical(obj)


def step_signatures(pipeline: Pipeline) -> dict[str, str]:
    """Hash of each step's component identity, version, parameters and upstream signatures."""
    from pydantic import BaseModel

    from fastdistill.models import LLM

    def identity(obj: BaseModel) -> dict[str, Any]:
        if isinstance(obj, LLM):
            # what defines the answers (model, generation parameters, schema), not how they are
            # fetched (base_url, timeouts, retries, budgets), and never a secret
            return {"llm": obj.identity(), "class": type(obj).__qualname__}
        out: dict[str, Any] = {
            "class": f"{type(obj).__module__}.{type(obj).__qualname__}",
            "version": getattr(type(obj), "component_version", "1"),
        }
        skip = {"name", "input_batch_size", "batch_size", "max_in_flight", "replicas",
                "replica_mode"}
        for fname in type(obj).model_fields:
            if fname in skip or fname.endswith(("api_key", "token", "secret", "password")):
                continue
            value = getattr(obj, fname)
            if isinstance(value, BaseModel):
                out[fname] = identity(value)
            elif callable(value):
                out[fname] = getattr(value, "__qualname__", "callable")
            else:
                out[fname] = value
        return out

    sigs: dict[str, str] = {}
    for name in pipeline.topological_order():
        step = pipeline.steps[name]
        payload = {
            "step": identity(step),
            "upstream": [sigs[u] for u in pipeline.upstream(name)],
        }
        fingerprint = getattr(step, "fingerprint", None)
        if callable(fingerprint):
            payload["input"] = fingerprint(pipeline.base_dir)
        sigs[name] = hashlib.sha256(_canonical(payload)).hexdigest()[:16]
    return sigs


def new_run_id() -> str:
    """A sortable, unique run id: ``YYYYmmdd-HHMMSS-xxxxxx``."""
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{now}-{uuid.uuid4().hex[:6]}"


def build_plan(
    pipeline: Pipeline,
    *,
    registry: Registry,
    output: str | Path | None,
    limit: int | None,
    transport: str,
    placement: str,
    placement_options: Mapping[str, Any] | None,
    on_event: Callable[[Event], None] | None,
    cancel: threading.Event | None,
    resume: bool = True,
    checkpoint: bool = True,
    llm_cache: Any = None,
) -> ExecutionPlan:
    """Resolve components by name and lay out the run's output location."""
    # resolve every name first: a typo must not leave an empty output folder behind
    transport_cls = registry.transport(transport)
    placement_cls = registry.placement(placement)
    strategy = placement_cls(**dict(placement_options or {}))
    run_id = new_run_id()
    root = output if output is not None else Path("fastdistill-runs") / pipeline.name
    storage = StorageBackend(str(root))
    return ExecutionPlan(
        pipeline=pipeline,
        registry=registry,
        run_id=run_id,
        storage=storage,
        order=pipeline.topological_order(),
        signatures=step_signatures(pipeline),
        transport_factory=transport_cls,
        placement=strategy,
        limit=limit,
        on_event=on_event,
        cancel=cancel or threading.Event(),
        resume=resume,
        checkpoint=checkpoint,
        llm_cache=llm_cache,
    )
