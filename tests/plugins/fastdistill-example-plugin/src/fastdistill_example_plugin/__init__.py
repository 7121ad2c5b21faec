"""fastdistill-example-plugin: one step, ``reverse_text``, registered through one entry point.

The module stays import-light (only ``fastdistill`` and ``pydantic``), so discovering it is cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastdistill import Row, Step, StepContext, hookimpl
from pydantic import Field

__version__ = "0.1.0"


class ReverseText(Step):
    """Reverse the text in ``column`` (default ``text``); a row without text there is rejected."""

    column: str = Field(default="text", description="Column whose text is reversed.")

    def input_columns(self) -> list[str]:
        """The column to reverse must come from upstream."""
        return [self.column]

    def output_columns(self) -> list[str]:
        """The same column, reversed."""
        return [self.column]

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Reverse each row's text; reject (never drop) rows without text."""
        out: list[Row] = []
        for row in rows:
            value = row.get(self.column)
            if not isinstance(value, str):
                kind = type(value).__name__
                ctx.reject(row, "invalid_input", f"{self.column!r} is {kind}, not text")
                continue
            out.append({**row, self.column: value[::-1]})
        return out


@hookimpl
def register_steps(register: Any) -> None:
    """Register ``reverse_text``."""
    register(ReverseText, name="reverse_text")
