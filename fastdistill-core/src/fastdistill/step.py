"""Step base classes, column contracts and runtime parameters.

A step is a pydantic model.  Its fields are its configuration; fields annotated with
:class:`RuntimeParameter` are values a user may set per run (``--param step.key=value``) without
changing what the step *is*.  Runtime-parameter metadata is computed once per class, when the
class is created (:attr:`Step.runtime_parameters_info`), from the class's ``model_fields``.

Steps know nothing about pipelines, engines, queues or files: they get rows and a
:class:`~fastdistill.context.StepContext`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from fastdistill.rows import Row

if TYPE_CHECKING:
    from fastdistill.context import StepContext


@dataclass(frozen=True)
class RuntimeParameter:
    """Marks a field as a runtime parameter: ``Annotated[T, RuntimeParameter("what it is")]``.

    :param description: shown by ``fastdistill inspect`` and in validation errors.
    :param required: the value must be set (not ``None``) before the pipeline runs.
    """

    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class RuntimeParamInfo:
    """Metadata of one runtime parameter, computed at class creation."""

    name: str
    description: str
    required: bool
    default: Any


class _Component(BaseModel):
    """Shared base of steps and models: strict fields, per-class runtime-parameter metadata."""

    #: ``defer_build``: pydantic builds a class's validator when it is first instantiated (or its
    #: schema asked for), not when the class is created, so ``import fastdistill`` and plugin
    #: discovery build none (the subclasses inherit it).  Field collection, and with it
    #: :attr:`runtime_parameters_info`, still happens at class creation.
    model_config = ConfigDict(
        extra="forbid", arbitrary_types_allowed=True, validate_assignment=True, defer_build=True
    )

    #: name under which a plugin registers the class (optional; defaults to snake_case name)
    component_name: ClassVar[str | None] = None
    #: version of the component's behaviour; part of its identity (cache signatures)
    component_version: ClassVar[str] = "1"
    #: runtime parameters of this class, computed once when the class is created
    runtime_parameters_info: ClassVar[dict[str, RuntimeParamInfo]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        info: dict[str, RuntimeParamInfo] = {}
        for fname, field in cls.model_fields.items():
            marker = next((m for m in field.metadata if isinstance(m, RuntimeParameter)), None)
            if marker is None:
                continue
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            info[fname] = RuntimeParamInfo(fname, marker.description, marker.required, default)
        cls.runtime_parameters_info = info


class Step(_Component):
    """A step that transforms batches of rows.

    Subclasses declare ``inputs`` (columns they need) and ``outputs`` (columns they add or
    change) and implement :meth:`process`.  To drop a row, call ``ctx.reject(row, reason)``:
    nothing may disappear silently.
    """

    #: columns the step needs from upstream (override :meth:`input_columns` when dynamic)
    inputs: ClassVar[tuple[str, ...]] = ()
    #: columns the step produces (override :meth:`output_columns` when dynamic)
    outputs: ClassVar[tuple[str, ...]] = ()
    #: steps whose metrics belong in the quality report's ``gates`` section
    is_gate: ClassVar[bool] = False
    #: True for a cheap step whose output rows and rejections follow from its input rows and
    #: parameters alone (no state, no clock, no randomness, no outside world): the engine does
    #: not checkpoint it and recomputes it on resume, which costs less than recording it
    deterministic: ClassVar[bool] = False
    #: parameters holding local paths that are relative to the pipeline document's folder:
    #: :meth:`Pipeline.save` rewrites them when the document is saved somewhere else
    path_params: ClassVar[tuple[str, ...]] = ()

    name: str | None = Field(default=None, description="Name of the step in its pipeline.")
    input_batch_size: int = Field(default=50, ge=1, description="Rows per call of process().")
    replicas: int = Field(default=1, ge=1, description="Copies of the step working in parallel.")
    replica_mode: Literal["thread", "process"] = Field(
        default="process",
        description="'process' for CPU-bound steps (no GIL contention), 'thread' for I/O-bound.",
    )

    def input_columns(self) -> list[str]:
        """Columns this instance needs; validated against what upstream steps produce."""
        return list(self.inputs)

    def output_columns(self) -> list[str]:
        """Columns this instance produces."""
        return list(self.outputs)

    def load(self, ctx: StepContext) -> None:
        """Acquire resources (connections, models) before the first batch.  Default: nothing."""

    def unload(self) -> None:
        """Release what :meth:`load` acquired.  Called once, also after a failure."""

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Transform one batch.  Return the kept rows; reject the others through ``ctx``."""
        raise NotImplementedError(f"{type(self).__name__}.process() is not implemented")

    def partition_key(self, row: Row) -> str | None:
        """With several replicas, rows with the same key go to the same replica (override in
        stateful steps such as dedup).  Default ``None``: any replica."""
        return None

    def state_columns(self) -> list[str]:
        """Columns :meth:`restore_state` needs; checkpoints always store them in full (other
        unchanged columns are stored once, by the step that produced them)."""
        return []

    def restore_state(self, kept: list[Row], ctx: StepContext) -> None:
        """On resume, called once after :meth:`load` with the rows this step kept in earlier
        attempts (which are replayed, not processed again).  Each row holds the engine's row id,
        the columns the step changed and the columns named by :meth:`state_columns`.  Stateful
        steps (dedup) rebuild their state here.  Default: nothing."""

    @classmethod
    def summarize_metrics(cls, metrics: dict[str, Any]) -> dict[str, Any]:
        """Derived quality metrics (rates) from the raw counters the step recorded."""
        return {}

    def __rshift__(self, other: Any) -> Any:
        from fastdistill.pipeline.compose import connect

        return connect(self, other)

    def __rrshift__(self, other: Any) -> Any:
        from fastdistill.pipeline.compose import connect

        return connect(other, self)


class GeneratorStep(Step):
    """A step with no upstream: it produces the rows (a loader)."""

    batch_size: int = Field(default=50, ge=1, description="Rows per generated batch.")
    #: folder relative paths are resolved against before the run (set by the pipeline)
    _base_dir: Path | None = PrivateAttr(default=None)

    def resolve_path(self, path: str | Path) -> str:
        """``path`` made absolute against the pipeline's base folder (URLs unchanged); usable
        before the run (e.g. in :meth:`output_columns`), when no context exists yet."""
        text = str(path)
        if "://" in text:
            return text
        p = Path(text).expanduser()
        base = self._base_dir or Path.cwd()
        return str(p if p.is_absolute() else (base / p).resolve())

    def generate(self, ctx: StepContext) -> Iterator[list[Row]]:
        """Yield batches of rows.  Honour ``ctx.limit`` (max rows) when it is set."""
        raise NotImplementedError(f"{type(self).__name__}.generate() is not implemented")

    def fingerprint(self, base_dir: Path) -> str | None:
        """A content fingerprint of the input (e.g. a file hash), part of the step signature,
        so changed input data is never served from a checkpoint.  Default: none."""
        return None

    def total_rows(self, ctx: StepContext) -> int | None:
        """Number of rows :meth:`generate` will yield, when cheap to know (for progress)."""
        return None

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Generators receive no input; this is never called by the engine."""
        return rows


class GlobalStep(Step):
    """A step that needs every row at once (e.g. a global dedup or a split)."""


class Task(Step):
    """A step that calls an LLM once per row; the engine keeps many rows in flight.

    Subclasses implement :meth:`format_input` (row → chat messages) and :meth:`format_output`
    (generation → new columns).  A failed call rejects only that row, with a typed reason.
    """

    max_in_flight: int = Field(default=8, ge=1, description="Concurrent LLM requests.")

    async def aprocess_row(self, row: Row, ctx: StepContext) -> Row | None:
        """Process one row; return the new row, or ``None`` after ``ctx.reject``-ing it."""
        raise NotImplementedError(f"{type(self).__name__}.aprocess_row() is not implemented")

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Synchronous fallback: run the rows through :meth:`aprocess_row` concurrently."""
        import asyncio

        async def _all() -> list[Row | None]:
            sem = asyncio.Semaphore(self.max_in_flight)

            async def one(r: Row) -> Row | None:
                async with sem:
                    return await self.aprocess_row(r, ctx)

            return await asyncio.gather(*(one(r) for r in rows))

        return [r for r in asyncio.run(_all()) if r is not None]
