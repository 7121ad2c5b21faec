"""Exact deduplication on a key column."""

from __future__ import annotations

import json
from collections.abc import Iterable

from fastdistill.context import StepContext
from fastdistill.rows import ROW_ID, Reason, Row
from fastdistill.step import Step
from pydantic import Field, PrivateAttr


class DedupExact(Step):
    """Keep the first row for each value of ``key``; reject later ones as ``duplicate``.

    The rejection detail names the key and the first row that had it.  What has been seen is
    kept in the instance and reset by :meth:`load`, so every run starts empty.
    """

    key: str = Field(default="sample_id", description="Column whose value identifies a row.")

    _seen: dict[str, str] = PrivateAttr(default_factory=dict)

    def input_columns(self) -> list[str]:
        """The key column."""
        return [self.key]

    def load(self, ctx: StepContext) -> None:
        """Forget rows seen in a previous run."""
        self._seen = {}

    def partition_key(self, row: Row) -> str | None:
        """Rows with the same key go to the same replica, so each replica's memory is exact."""
        if self.key not in row:
            return None
        return json.dumps(row[self.key], sort_keys=True, default=repr)

    def state_columns(self) -> list[str]:
        """The key column is needed to rebuild the seen set on resume."""
        return [self.key]

    def restore_state(self, kept: list[Row], ctx: StepContext) -> None:
        """On resume: the rows kept by earlier attempts are first occurrences; remember them."""
        for row in kept:
            if self.key in row:
                marker = json.dumps(row[self.key], sort_keys=True, default=repr)
                label = f"row {row[ROW_ID]}" if ROW_ID in row else f"{self.key}={row[self.key]!r}"
                self._seen.setdefault(marker, label)

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Pass first occurrences, reject repeats."""
        out: list[Row] = []
        for row in rows:
            if self.key not in row:
                ctx.reject(row, Reason.INVALID_INPUT, f"missing key column {self.key!r}")
                continue
            value = row[self.key]
            marker = json.dumps(value, sort_keys=True, default=repr)  # 1 and "1" stay distinct
            first = self._seen.get(marker)
            if first is not None:
                ctx.metrics.incr("duplicates")
                ctx.reject(row, Reason.DUPLICATE, f"duplicate {self.key}={value!r}; first seen in {first}")
                continue
            label = f"row {row[ROW_ID]}" if ROW_ID in row else f"{self.key}={value!r}"
            self._seen[marker] = label
            out.append(row)
        return out
