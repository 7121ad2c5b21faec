"""Setting step parameters by dotted name: ``{"teacher.llm.base_url": "http://..."}``."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from fastdistill.errors import PipelineValidationError

if TYPE_CHECKING:
    from fastdistill.pipeline.core import Pipeline


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping) and "." not in key and not prefix:
            flat.update(_flatten(value, f"{full}."))
        else:
            flat[full] = value
    return flat


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse ``step.key=value`` from the CLI; the value is read as a YAML scalar/list."""
    import yaml

    if "=" not in text:
        raise PipelineValidationError(f"--param {text!r} must look like step.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def apply_params(pipeline: Pipeline, params: Mapping[str, Any], registry: Any = None) -> None:
    """Set each dotted parameter on its step (validated by the step's pydantic model).

    A value ``{"component": NAME, "params": {...}}`` replaces a nested component, e.g. the
    teacher's model: ``teacher.llm={component: openai_compat, params: {model: m}}``.
    """
    steps = pipeline.steps
    for dotted, value in _flatten(params).items():
        parts = dotted.split(".")
        if len(parts) < 2:
            raise PipelineValidationError(f"parameter {dotted!r} must be 'step.key'")
        step_name, *path = parts
        if step_name not in steps:
            close = difflib.get_close_matches(step_name, list(steps), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise PipelineValidationError(
                f"parameter {dotted!r}: no step named {step_name!r}.{hint} "
                f"Steps: {', '.join(steps)}"
            )
        target: BaseModel = steps[step_name]
        for attr in path[:-1]:
            nxt = getattr(target, attr, None)
            if not isinstance(nxt, BaseModel):
                raise PipelineValidationError(
                    f"parameter {dotted!r}: {attr!r} of step {step_name!r} has no parameters"
                )
            target = nxt
        field = path[-1]
        fields = type(target).model_fields
        if field not in fields or field == "name":
            close = difflib.get_close_matches(field, list(fields), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            known = ", ".join(f for f in fields if f != "name")
            raise PipelineValidationError(
                f"parameter {dotted!r}: {type(target).__name__} has no parameter {field!r}.{hint}"
                f" Parameters: {known}"
            )
        if isinstance(value, Mapping) and "component" in value:
            from fastdistill.serialization.document import build_component

            if registry is None:
                from fastdistill.registry import Registry

                registry = Registry()
            try:
                value = build_component("model", value, registry, f"parameter {dotted!r}")
            except Exception as exc:
                raise PipelineValidationError(str(exc)) from None
        try:
            setattr(target, field, value)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise PipelineValidationError(
                f"parameter {dotted!r} of step {step_name!r}: {first.get('msg')} (got {value!r})"
            ) from None
