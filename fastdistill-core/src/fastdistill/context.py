"""``StepContext``: the only view of the run that a step gets."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastdistill.placement import DeviceAssignment
from fastdistill.rows import ROW_ID, Reason, Rejection, Row, reason_code
from fastdistill.storage import StorageBackend

if TYPE_CHECKING:
    import logging
    from collections.abc import Sequence

    from fastdistill.cache.llm_cache import LLMResponseCache
    from fastdistill.models import LLM, Generation, Message


class StepMetrics:
    """Thread-safe counters and observations a step records for the reports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, float] = {}
        self._observations: dict[str, list[float]] = {}

    def incr(self, name: str, n: float = 1) -> None:
        """Add ``n`` to counter ``name``."""
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + n

    def observe(self, name: str, value: float) -> None:
        """Record one value of ``name`` (statistics are computed in the reports)."""
        with self._lock:
            self._observations.setdefault(name, []).append(float(value))

    def observe_many(self, values: Mapping[str, float]) -> None:
        """Record one value of each name in ``values`` (one lock for all of them)."""
        with self._lock:
            obs = self._observations
            for name, value in values.items():
                obs.setdefault(name, []).append(float(value))

    def counters(self) -> dict[str, float]:
        """A copy of the counters."""
        with self._lock:
            return dict(self._counters)

    def observations(self) -> dict[str, list[float]]:
        """A copy of the observations."""
        with self._lock:
            return {k: list(v) for k, v in self._observations.items()}

    def merge(self, other: StepMetrics) -> None:
        """Fold another replica's metrics into these."""
        for k, v in other.counters().items():
            self.incr(k, v)
        for k, values in other.observations().items():
            for v in values:
                self.observe(k, v)


@dataclass
class StepContext:
    """What a step sees at run time.

    :ivar run_id: identifier of this run.
    :ivar step_name: the step's name in the pipeline.
    :ivar logger: a logger named ``fastdistill.step.<step_name>``.
    :ivar metrics: counters and observations for the quality and timing reports.
    :ivar storage: artifact storage rooted at the run's output location.
    :ivar params: resolved runtime parameters of the step.
    :ivar device: the device assignment of this replica (CPU by default).
    :ivar base_dir: directory that relative paths in the pipeline document are relative to.
    :ivar limit: maximum number of rows a generator should produce (``None``: all).
    :ivar llm_cache: the run's LLM response cache (``None``: every request goes to the model);
        steps call models through :meth:`agenerate` so that it is used.
    """

    run_id: str
    step_name: str
    storage: StorageBackend
    metrics: StepMetrics = field(default_factory=StepMetrics)
    params: Mapping[str, Any] = field(default_factory=dict)
    device: DeviceAssignment = field(default_factory=DeviceAssignment.cpu)
    base_dir: Path = field(default_factory=Path.cwd)
    limit: int | None = None
    replica: int = 0
    cancel_event: threading.Event = field(default_factory=threading.Event)
    llm_cache: LLMResponseCache | None = None
    logger: logging.Logger = field(init=False)

    def __post_init__(self) -> None:
        import logging  # here: ``import fastdistill`` does not need it

        self.logger = logging.getLogger(f"fastdistill.step.{self.step_name}")
        self._rejected: list[tuple[Row, Rejection]] = []
        self._lock = threading.Lock()
        self._keys: Any = None  # the response cache's KeyMemo for this step's requests
        #: set by an engine that awaits ``llm_cache.barrier()`` before it counts answers as
        #: done: new answers are then queued for storage without waiting for each commit
        self.defer_cache_commits = False

    @property
    def cancelled(self) -> bool:
        """True once the run is being cancelled: stop early, keep what is done."""
        return self.cancel_event.is_set()

    async def agenerate(
        self, llm: LLM, messages: Sequence[Message], **overrides: Any
    ) -> Generation:
        """Ask ``llm`` through the run's response cache (when there is one).

        Counts ``llm_cache.hits`` / ``llm_cache.misses`` in :attr:`metrics` when the cache is on;
        without a cache this is ``await llm.agenerate(messages, **overrides)``.
        """
        if self.llm_cache is None:
            self.metrics.incr("llm_calls")  # with a cache, its misses are the calls
            return await llm.agenerate(messages, **overrides)
        if self._keys is None:
            from fastdistill.cache.keys import KeyMemo

            self._keys = KeyMemo()
        gen = await self.llm_cache.request(
            llm, messages, overrides, keys=self._keys, durable=not self.defer_cache_commits
        )
        self.metrics.incr("llm_cache.hits" if gen.cached else "llm_cache.misses")
        return gen

    def reject(self, row: Row, reason: Reason | str, detail: str = "") -> None:
        """Take ``row`` out of the stream and keep it in the rejected set with a reason."""
        rejection = Rejection(reason_code(reason), self.step_name, str(detail)[:2000])
        with self._lock:
            self._rejected.append((row, rejection))
        self.metrics.incr(f"rejected.{rejection.reason}")

    def drain_rejections(self) -> list[tuple[Row, Rejection]]:
        """Rejections recorded since the last call (used by engines)."""
        with self._lock:
            out, self._rejected = self._rejected, []
        return out

    def resolve_path(self, path: str | Path) -> str:
        """A path from the pipeline document, made absolute against :attr:`base_dir`.

        URLs (``s3://...``, ``memory://...``) are returned unchanged.
        """
        text = str(path)
        if "://" in text:
            return text
        p = Path(text).expanduser()
        return str(p if p.is_absolute() else (self.base_dir / p).resolve())

    def row_label(self, row: Row) -> str:
        """A short label naming a row in messages: its ``sample_id``, ``id`` or engine id."""
        for key in ("sample_id", "id", ROW_ID):
            if key in row:
                return f"{key}={row[key]}"
        return "row"
