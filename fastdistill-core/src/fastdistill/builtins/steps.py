"""Generic built-in steps."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import repeat
from operator import itemgetter
from typing import Annotated, Any, ClassVar

from pydantic import Field, SkipValidation, field_validator

from fastdistill.context import StepContext
from fastdistill.rows import Row
from fastdistill.step import GeneratorStep, Step


class LoadFromDicts(GeneratorStep):
    """Yield rows given inline (in Python or in the pipeline document)."""

    #: the same parameters give the same rows: the engine regenerates them on resume instead
    #: of checkpointing them
    deterministic: ClassVar[bool] = True

    # the caller's list is kept as is (not copied row by row); its type is checked below
    data: Annotated[list[dict[str, Any]], SkipValidation] = Field(
        default_factory=list, description="The rows."
    )

    @field_validator("data", mode="before")
    @classmethod
    def _check_data(cls, value: Any) -> Any:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ValueError(f"data must be a list of rows (dicts), not {type(value).__name__}")
        for i, row in enumerate(value):
            if not isinstance(row, dict):
                raise ValueError(f"data[{i}] must be a dict, not {type(row).__name__}")
        return value

    def output_columns(self) -> list[str] | None:  # type: ignore[override]
        """Every key of the first row (``None`` without rows: no row, no column to check)."""
        return list(self.data[0]) if self.data else None

    def total_rows(self, ctx: StepContext) -> int | None:
        """Number of rows (after ``ctx.limit``)."""
        n = len(self.data)
        return n if ctx.limit is None else min(n, ctx.limit)

    def generate(self, ctx: StepContext) -> Iterator[list[Row]]:
        """Batches of copies of the rows."""
        data = self.data if ctx.limit is None else self.data[: ctx.limit]
        for start in range(0, len(data), self.batch_size):
            yield list(map(dict, data[start : start + self.batch_size]))


class KeepColumns(Step):
    """Keep only the listed columns (in that order)."""

    #: a projection: recomputed on resume, never checkpointed
    deterministic: ClassVar[bool] = True

    columns: list[str] = Field(description="Columns to keep.")

    def input_columns(self) -> list[str]:
        """The kept columns must exist upstream."""
        return list(self.columns)

    def output_columns(self) -> list[str]:
        """The kept columns."""
        return list(self.columns)

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Project each row (private engine columns are kept)."""
        cols = self.columns
        if not rows:
            return []
        shape = rows[0].keys()
        names = [k for k in shape if k.startswith("_")] + list(cols)
        if len(names) > 1 and all(c in shape for c in cols):
            # rows of the same length holding all of the first row's keys have its key set:
            # then every row is projected in C loops (zip stops at the kept names)
            full = itemgetter(*names, *(k for k in shape if k not in names))
            try:
                if list(map(len, rows)).count(len(shape)) == len(rows):
                    return list(map(dict, map(zip, repeat(names), map(full, rows))))
            except (KeyError, TypeError):
                pass  # rows of another shape: one by one
        return [
            {**{k: v for k, v in r.items() if k.startswith("_")}, **{c: r.get(c) for c in cols}}
            for r in rows
        ]
