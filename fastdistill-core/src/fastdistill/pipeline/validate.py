"""Validation before anything runs: structure, columns, required runtime parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from fastdistill.errors import PipelineValidationError
from fastdistill.rows import ROW_ID
from fastdistill.step import GeneratorStep

if TYPE_CHECKING:
    from fastdistill.pipeline.core import Pipeline
    from fastdistill.registry import Registry


def _missing_runtime_params(obj: BaseModel, prefix: str = "") -> list[str]:
    missing: list[str] = []
    info = getattr(type(obj), "runtime_parameters_info", {})
    for name, meta in info.items():
        if meta.required and getattr(obj, name) in (None, ""):
            missing.append(f"{prefix}{name} ({meta.description})" if meta.description else prefix + name)
    for name in type(obj).model_fields:
        value = getattr(obj, name)
        if isinstance(value, BaseModel):
            missing.extend(_missing_runtime_params(value, f"{prefix}{name}."))
    return missing


def _describe(pipeline: Pipeline, name: str) -> str:
    comp = pipeline.component_names.get(name) or type(pipeline.steps[name]).__name__
    return f"step {name!r} ({comp})"


def validate_pipeline(pipeline: Pipeline, registry: Registry | None = None) -> list[str]:
    """Raise :class:`PipelineValidationError` naming the step at fault; return warnings."""
    warnings: list[str] = []
    steps = pipeline.steps
    if not steps:
        raise PipelineValidationError(f"pipeline {pipeline.name!r} has no steps")
    order = pipeline.topological_order()
    for name in order:
        step = steps[name]
        ups = pipeline.upstream(name)
        if isinstance(step, GeneratorStep) and ups:
            raise PipelineValidationError(
                f"{_describe(pipeline, name)} is a generator and cannot have upstream steps "
                f"({', '.join(ups)})"
            )
        if not isinstance(step, GeneratorStep) and not ups:
            raise PipelineValidationError(
                f"{_describe(pipeline, name)} has no upstream step; connect it after a loader "
                "(e.g. load >> step)"
            )
        missing = _missing_runtime_params(step)
        if missing:
            raise PipelineValidationError(
                f"{_describe(pipeline, name)} is missing required runtime parameter(s): "
                f"{', '.join(missing)}. Set them in the document or with "
                f"--param {name}.<key>=<value>"
            )
    # column contracts: what reaches each step is the union of what its ancestors produce
    available: dict[str, set[str] | None] = {}
    for name in order:
        step = steps[name]
        ups = pipeline.upstream(name)
        if isinstance(step, GeneratorStep):
            try:
                cols = step.output_columns()
            except FileNotFoundError as exc:
                text = str(exc)  # a loader's own message may already name the step
                if not text.startswith(f"step {name!r}"):
                    text = f"{_describe(pipeline, name)}: {text}"
                raise PipelineValidationError(text) from None
            available[name] = None if cols is None else set(cols) | {ROW_ID}
            continue
        incoming: set[str] | None = set()
        for up in ups:
            if available[up] is None:
                incoming = None
                break
            assert incoming is not None
            incoming |= available[up] or set()
        if incoming is not None:
            need = [c for c in step.input_columns() if c not in incoming]
            if need:
                raise PipelineValidationError(
                    f"{_describe(pipeline, name)} needs column(s) {', '.join(map(repr, need))}, "
                    f"which no upstream step produces (available: "
                    f"{', '.join(sorted(c for c in incoming if not c.startswith('_')))})"
                )
            outs = step.output_columns()
            available[name] = None if outs is None else incoming | set(outs)
        else:
            available[name] = None
    return warnings
