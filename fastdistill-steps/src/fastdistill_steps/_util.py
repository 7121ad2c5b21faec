"""Small helpers shared by the steps (no state, no heavy imports)."""

from __future__ import annotations

from typing import Any

from fastdistill.context import StepContext
from fastdistill.step import Step


def runtime_value(step: Step, ctx: StepContext, name: str) -> Any:
    """A runtime parameter: the context's resolved value when given, else the step's field."""
    if name in ctx.params and ctx.params[name] not in (None, ""):
        return ctx.params[name]
    return getattr(step, name)


def require_runtime(step: Step, ctx: StepContext, name: str) -> Any:
    """Like :func:`runtime_value`, raising a clear ``ValueError`` when the value is unset."""
    value = runtime_value(step, ctx, name)
    if value in (None, ""):
        raise ValueError(
            f"step {ctx.step_name!r} ({type(step).__name__}) needs the runtime parameter "
            f"{name!r}; set it with --param {ctx.step_name}.{name}=<value>"
        )
    return value


def step_label(step: Step, ctx: StepContext | None = None) -> str:
    """``step 'name' (Class)`` for messages."""
    name = (ctx.step_name if ctx is not None else None) or step.name or type(step).__name__
    return f"step {name!r} ({type(step).__name__})"
