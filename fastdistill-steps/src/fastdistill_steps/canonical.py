"""Canonicalisation of text fields and the stable ``sample_id`` hash."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any, ClassVar

from fastdistill.context import StepContext
from fastdistill.rows import Reason, Row
from fastdistill.step import Step
from pydantic import Field, model_validator

_WHITESPACE = re.compile(r"\s+")


def canonical_text(value: str, *, collapse_whitespace: bool = True, lowercase: bool = False) -> str:
    """Unicode NFC, stripped, whitespace runs collapsed to one space, optionally lowercased."""
    text = unicodedata.normalize("NFC", value).strip()
    if collapse_whitespace:
        text = _WHITESPACE.sub(" ", text)
    return text.lower() if lowercase else text


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no insignificant whitespace, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sample_id_for(task_id: str, values: dict[str, Any], length: int = 16) -> str:
    """``sha256(task_id + canonical_json(values)).hexdigest()[:length]``: stable everywhere."""
    digest = hashlib.sha256((task_id + canonical_json(values)).encode("utf-8")).hexdigest()
    return digest[:length]


class Canonicalize(Step):
    """Normalise text fields in place: Unicode NFC, strip, collapse whitespace, lowercase some.

    A row whose field is missing, ``None`` or not a string is rejected (``invalid_input``)
    with the field named.
    """

    #: a pure function of the row: recomputed on resume, not checkpointed
    deterministic: ClassVar[bool] = True

    fields: list[str] = Field(min_length=1, description="Text columns to canonicalise.")
    collapse_whitespace: bool = Field(default=True, description="Collapse whitespace runs.")
    lowercase: list[str] = Field(default_factory=list, description="Fields also lowercased.")

    @model_validator(mode="after")
    def _lowercase_subset(self) -> Canonicalize:
        extra = [f for f in self.lowercase if f not in self.fields]
        if extra:
            raise ValueError(f"lowercase fields {extra} must also be listed in fields {self.fields}")
        return self

    def input_columns(self) -> list[str]:
        """The canonicalised fields."""
        return list(self.fields)

    def output_columns(self) -> list[str]:
        """The same fields, normalised."""
        return list(self.fields)

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Normalise each row; reject rows with a non-string field."""
        lower = set(self.lowercase)
        out: list[Row] = []
        for row in rows:
            bad = next((f for f in self.fields if not isinstance(row.get(f), str)), None)
            if bad is not None:
                got = "missing" if bad not in row else type(row[bad]).__name__
                ctx.reject(row, Reason.INVALID_INPUT, f"field {bad!r} must be a string, got {got}")
                continue
            new = dict(row)
            for f in self.fields:
                new[f] = canonical_text(
                    row[f], collapse_whitespace=self.collapse_whitespace, lowercase=f in lower
                )
            out.append(new)
        return out


class ComputeHash(Step):
    """Add a stable ``sample_id``: sha256 of ``task_id`` + canonical JSON of the fields (16 hex).

    The hash covers ``{field: value}`` for the listed fields (order of ``fields`` does not
    matter), so it is the same across runs, processes and machines.
    """

    #: a pure function of the row: recomputed on resume, not checkpointed
    deterministic: ClassVar[bool] = True

    fields: list[str] = Field(min_length=1, description="Columns that identify a sample.")
    task_id: str = Field(default="default", description="Namespace of the ids (the task).")
    output_column: str = Field(default="sample_id", description="Column receiving the id.")

    def input_columns(self) -> list[str]:
        """The hashed fields."""
        return list(self.fields)

    def output_columns(self) -> list[str]:
        """The id column."""
        return [self.output_column]

    def process(self, rows: list[Row], ctx: StepContext) -> Iterable[Row]:
        """Add the id to each row; reject rows missing a hashed field."""
        out: list[Row] = []
        for row in rows:
            missing = [f for f in self.fields if f not in row]
            if missing:
                ctx.reject(row, Reason.INVALID_INPUT, f"cannot hash: missing field(s) {missing}")
                continue
            values = {f: row[f] for f in self.fields}
            out.append({**row, self.output_column: sample_id_for(self.task_id, values)})
        return out
