"""The stored form of a generation: JSON written by orjson, checked field by field when read.

An entry that is valid JSON but not a generation (a field of the wrong type, written by another
tool or damaged) must read as a miss, so that the request is asked again and the entry replaced,
never as an answer that fails its row.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import orjson

from fastdistill.models import Generation

FIELDS = frozenset(f.name for f in dataclasses.fields(Generation)) - {"cached"}
_OPTIONAL_TEXT = ("text", "finish_reason", "error_kind", "error")


def encode(gen: Generation) -> str:
    """A generation's stored JSON (orjson encodes the dataclass itself; ``cached`` is stored
    but ignored when read back)."""
    return orjson.dumps(gen).decode("utf-8")


def decode(text: str | bytes) -> Generation:
    """The generation stored as ``text``; ``ValueError`` names what is wrong with it."""
    data: Any = orjson.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object but {type(data).__name__}")
    values = {k: v for k, v in data.items() if k in FIELDS}
    for name in _OPTIONAL_TEXT:
        if values.get(name) is not None and not isinstance(values[name], str):
            raise ValueError(f"{name!r} is {type(values[name]).__name__}, not text")
    if not isinstance(values.get("model", ""), str):
        raise ValueError("'model' is not text")
    usage = values.get("usage", {})
    if not isinstance(usage, dict) or not all(
        isinstance(k, str) and (v is None or (isinstance(v, int) and not isinstance(v, bool)))
        for k, v in usage.items()
    ):
        raise ValueError("'usage' is not a mapping of names to token counts")
    latency = values.get("latency_s", 0.0)
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not math.isfinite(
            latency):
        raise ValueError("'latency_s' is not a number")
    gen = Generation(**values)
    if not gen.ok:  # only successful answers are stored: this one would fail its row forever
        raise ValueError(f"not a successful answer (error_kind={gen.error_kind!r}, "
                         f"text={str(gen.text)[:20]!r})")
    return gen
