"""Exporters: the dataset as JSON Lines, and as chat-format train/valid splits."""

from __future__ import annotations

import hashlib
import string
from collections.abc import Iterable
from typing import Any, ClassVar

from fastdistill.context import StepContext
from fastdistill.rows import Reason, Row, public_row
from fastdistill.step import GlobalStep
from pydantic import Field, field_validator


def _by_sample_id(rows: list[Row], id_column: str = "sample_id") -> list[Row]:
    return sorted(rows, key=lambda r: (id_column not in r, str(r.get(id_column, ""))))


def is_valid_split(sample_id: str, valid_fraction: float) -> bool:
    """Deterministic split: ``int(sha256(sample_id)[:8], 16) / 2**32 < valid_fraction``."""
    bucket = int(hashlib.sha256(str(sample_id).encode("utf-8")).hexdigest()[:8], 16) / 2**32
    return bucket < valid_fraction


class ExportJsonl(GlobalStep):
    """Write the rows to ``path`` in the run's storage as JSON Lines, sorted by ``sample_id``.

    Engine-private columns (``_row_id`` ...) are left out; ``columns`` selects and orders the
    written columns.  Rows pass through unchanged.
    """

    #: recomputed on every run instead of replayed from checkpoints, so the file is always
    #: rewritten and matches the run's dataset (a rerun with another --limit included)
    deterministic: ClassVar[bool] = True

    path: str = Field(default="export/dataset.jsonl", description="File inside the run output.")
    columns: list[str] | None = Field(default=None, description="Columns to write (default all).")

    def input_columns(self) -> list[str]:
        """The selected columns, if any."""
        return list(self.columns or [])

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Write the file; return the rows."""
        records = [public_row(r) for r in _by_sample_id(rows)]
        if self.columns is not None:
            records = [{c: r.get(c) for c in self.columns} for r in records]
        ctx.storage.write_jsonl(self.path, records)
        ctx.metrics.incr("written", len(records))
        return rows


class _RowMapping(dict):  # type: ignore[type-arg]
    """``format_map`` source that reports the missing column by name."""

    def __missing__(self, key: str) -> Any:
        raise KeyError(key)


class ExportChat(GlobalStep):
    """Write chat-format ``<dir>/train.jsonl`` and ``<dir>/valid.jsonl`` (MLX-LM style).

    Each line is ``{"messages": [system?, user, assistant]}`` with the user turn
    ``user_template.format_map(row)`` and the assistant turn ``row[answer_column]``.  The split
    is deterministic by ``sample_id`` (:func:`is_valid_split`).  Rows pass through; a row the
    template cannot render, or with no answer or id, is rejected (``invalid_input``).
    """

    #: recomputed on every run, so train/valid always match the run's dataset (see ExportJsonl)
    deterministic: ClassVar[bool] = True

    dir: str = Field(default="mlx", description="Folder inside the run output.")
    system_prompt: str | None = Field(default=None, description="Optional system message.")
    user_template: str = Field(default="{question}", description="str.format template of the user turn.")
    answer_column: str = Field(default="sql", description="Column with the assistant answer.")
    id_column: str = Field(default="sample_id", description="Column the split is keyed on.")
    valid_fraction: float = Field(default=0.1, ge=0.0, le=1.0, description="Share of rows in valid.")

    @field_validator("user_template")
    @classmethod
    def _parsable(cls, value: str) -> str:
        try:
            list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"user_template is not a valid format string: {exc}") from None
        return value

    def _template_fields(self) -> list[str]:
        names = []
        for _, field, _, _ in string.Formatter().parse(self.user_template):
            if field:
                base = field.split(".")[0].split("[")[0]
                if base and not base.isdigit() and base not in names:
                    names.append(base)
        return names

    def input_columns(self) -> list[str]:
        """The template's fields, the answer column and the id column."""
        cols = [*self._template_fields(), self.answer_column, self.id_column]
        return list(dict.fromkeys(cols))

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Write both splits; return the rows that were exported."""
        train: list[dict[str, Any]] = []
        valid: list[dict[str, Any]] = []
        kept: list[Row] = []
        for row in _by_sample_id(rows, self.id_column):
            record = self._record(row, ctx)
            if record is None:
                continue
            kept.append(row)
            target = valid if is_valid_split(row[self.id_column], self.valid_fraction) else train
            target.append(record)
        base = self.dir.strip("/")
        ctx.storage.write_jsonl(f"{base}/train.jsonl", train)
        ctx.storage.write_jsonl(f"{base}/valid.jsonl", valid)
        ctx.metrics.incr("train", len(train))
        ctx.metrics.incr("valid", len(valid))
        kept_ids = {id(r) for r in kept}
        return [r for r in rows if id(r) in kept_ids]

    def _record(self, row: Row, ctx: StepContext) -> dict[str, Any] | None:
        if row.get(self.id_column) in (None, ""):
            ctx.reject(row, Reason.INVALID_INPUT, f"export_chat: missing {self.id_column!r}")
            return None
        answer = row.get(self.answer_column)
        if not isinstance(answer, str) or not answer.strip():
            ctx.reject(row, Reason.INVALID_INPUT, f"export_chat: no answer in {self.answer_column!r}")
            return None
        try:
            user = self.user_template.format_map(_RowMapping(public_row(row)))
        except (KeyError, IndexError, AttributeError, ValueError) as exc:
            ctx.reject(row, Reason.INVALID_INPUT, f"export_chat: user_template needs {exc}")
            return None
        messages = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": answer})
        return {"messages": messages}
