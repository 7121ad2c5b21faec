"""Generic built-in steps."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import Field

from fastdistill.context import StepContext
from fastdistill.rows import Row
from fastdistill.step import GeneratorStep, Step


class LoadFromDicts(GeneratorStep):
    """Yield rows given inline (in Python or in the pipeline document)."""

    data: list[dict[str, Any]] = Field(default_factory=list, description="The rows.")

    def output_columns(self) -> list[str]:
        """Every key of the first row."""
        return list(self.data[0]) if self.data else []

    def total_rows(self, ctx: StepContext) -> int | None:
        """Number of rows (after ``ctx.limit``)."""
        n = len(self.data)
        return n if ctx.limit is None else min(n, ctx.limit)

    def generate(self, ctx: StepContext) -> Iterator[list[Row]]:
        """Batches of copies of the rows."""
        data = self.data if ctx.limit is None else self.data[: ctx.limit]
        for start in range(0, len(data), self.batch_size):
            yield [dict(r) for r in data[start : start + self.batch_size]]


class KeepColumns(Step):
    """Keep only the listed columns (in that order)."""

    columns: list[str] = Field(description="Columns to keep.")

    def input_columns(self) -> list[str]:
        """The kept columns must exist upstream."""
        return list(self.columns)

    def output_columns(self) -> list[str]:
        """The kept columns."""
        return list(self.columns)

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Project each row (private engine columns are kept)."""
        return [
            {**{k: v for k, v in r.items() if k.startswith("_")}, **{c: r.get(c) for c in self.columns}}
            for r in rows
        ]
