"""Structured output: a JSON schema (or pydantic model) for the answer, and its validator.

A model's ``structured_output`` is stored as a JSON schema, so it survives a pipeline document's
save and load (case C08).  Validation never needs a JSON-schema library: a pydantic model class
given at construction validates directly (its custom validators included); a schema read from a
document is rebuilt into pydantic types by :func:`type_from_schema` (objects, ``$defs``/``$ref``,
``anyOf``/``oneOf`` unions with discriminators, ``enum``/``const`` literals, arrays, tuples,
string/number constraints, nullable types), which accepts and rejects the same objects as the
model it was generated from.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    create_model,
)

_FORMATS: dict[str, Any] = {
    "date-time": _dt.datetime,
    "date": _dt.date,
    "time": _dt.time,
    "uuid": uuid.UUID,
    "duration": _dt.timedelta,
}
_NUM_KEYS = {
    "minimum": "ge",
    "maximum": "le",
    "exclusiveMinimum": "gt",
    "exclusiveMaximum": "lt",
    "multipleOf": "multiple_of",
}


class SchemaError(ValueError):
    """A JSON schema that cannot be turned into a validator."""


def schema_of(spec: Any) -> dict[str, Any]:
    """The JSON schema of ``spec``: a pydantic model class, or a JSON-schema mapping (copied)."""
    if isinstance(spec, type) and issubclass(spec, BaseModel):
        return spec.model_json_schema()
    if isinstance(spec, Mapping):
        schema = json.loads(json.dumps(dict(spec)))  # a JSON-ready deep copy
        type_from_schema(schema)  # fail at construction, not at the first answer
        return schema
    raise SchemaError(
        f"structured_output must be a pydantic model class or a JSON-schema mapping, "
        f"got {type(spec).__name__}"
    )


def schema_name(schema: Mapping[str, Any]) -> str:
    """A name for the schema (``response_format`` needs one): its title, sanitised."""
    title = str(schema.get("title") or "output")
    return re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] or "output"


def type_from_schema(schema: Mapping[str, Any]) -> Any:
    """A pydantic-compatible type that validates what ``schema`` describes."""
    return _Builder(schema).build(schema, "Output")


class _Builder:
    """Rebuilds pydantic types from one root schema (its ``$defs`` resolved once each)."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.defs: Mapping[str, Any] = root.get("$defs") or root.get("definitions") or {}
        self.built: dict[str, Any] = {}
        self.building: set[str] = set()

    def ref(self, ref: str) -> Any:
        m = re.fullmatch(r"#/(?:\$defs|definitions)/(.+)", ref)
        if ref == "#":
            return self.build(self.root, "Output", at_root_ref=True)
        if not m or m.group(1) not in self.defs:
            raise SchemaError(f"unresolvable $ref {ref!r} (only local #/$defs/... refs)")
        name = m.group(1)
        if name in self.built:
            return self.built[name]
        if name in self.building:
            raise SchemaError(f"recursive schema through {name!r} is not supported")
        self.building.add(name)
        self.built[name] = self.build(self.defs[name], name)
        self.building.discard(name)
        return self.built[name]

    def build(self, node: Any, name: str, at_root_ref: bool = False) -> Any:
        if node is True or node == {}:
            return Any
        if node is False:
            raise SchemaError("a `false` schema accepts nothing")
        if not isinstance(node, Mapping):
            raise SchemaError(f"schema node must be a mapping, got {node!r}")
        if "$ref" in node:
            if at_root_ref:
                raise SchemaError("a recursive root schema is not supported")
            return self.ref(str(node["$ref"]))
        if "const" in node:
            return Literal[node["const"]]  # type: ignore[valid-type]
        if "enum" in node:
            values = tuple(node["enum"])
            if not values:
                raise SchemaError("an empty enum accepts nothing")
            return Literal[values]  # type: ignore[valid-type]
        for key in ("anyOf", "oneOf"):
            if key in node:
                options = [self.build(s, f"{name}_{i}") for i, s in enumerate(node[key])]
                if not options:
                    raise SchemaError(f"empty {key}")
                union: Any = Union[tuple(options)] if len(options) > 1 else options[0]  # noqa: UP007
                disc = node.get("discriminator")
                if isinstance(disc, Mapping) and disc.get("propertyName"):
                    return Annotated[union, Field(discriminator=str(disc["propertyName"]))]
                return union
        if "allOf" in node:
            parts = list(node["allOf"])
            if len(parts) != 1:
                raise SchemaError("allOf with more than one schema is not supported")
            return self.build(parts[0], name)
        kind = node.get("type")
        if isinstance(kind, list):
            types = [self.build({**node, "type": k}, name) for k in kind]
            return Union[tuple(types)] if len(types) > 1 else types[0]  # noqa: UP007
        if kind is None:
            if "properties" in node:
                kind = "object"
            elif "items" in node or "prefixItems" in node:
                kind = "array"
            else:
                return Any
        return self.typed(node, str(kind), str(node.get("title") or name))

    def typed(self, node: Mapping[str, Any], kind: str, name: str) -> Any:
        if kind == "null":
            return None
        if kind == "boolean":
            return bool
        if kind in ("integer", "number"):
            base = int if kind == "integer" else float
            limits = {_NUM_KEYS[k]: v for k, v in node.items() if k in _NUM_KEYS}
            return Annotated[base, Field(**limits)] if limits else base
        if kind == "string":
            fmt = node.get("format")
            if fmt in _FORMATS:
                return _FORMATS[fmt]
            cons = {
                "min_length": node.get("minLength"),
                "max_length": node.get("maxLength"),
                "pattern": node.get("pattern"),
            }
            cons = {k: v for k, v in cons.items() if v is not None}
            return Annotated[str, StringConstraints(**cons)] if cons else str
        if kind == "array":
            return self.array(node, name)
        if kind == "object":
            return self.object(node, name)
        raise SchemaError(f"unsupported JSON schema type {kind!r}")

    def array(self, node: Mapping[str, Any], name: str) -> Any:
        if "prefixItems" in node:
            items = tuple(self.build(s, f"{name}_{i}") for i, s in enumerate(node["prefixItems"]))
            return tuple[items]  # type: ignore[valid-type]
        item = self.build(node.get("items", {}), f"{name}Item")
        limits = {
            "min_length": node.get("minItems"),
            "max_length": node.get("maxItems"),
        }
        limits = {k: v for k, v in limits.items() if v is not None}
        container: Any = set[item] if node.get("uniqueItems") else list[item]  # type: ignore[valid-type]
        return Annotated[container, Field(**limits)] if limits else container

    def object(self, node: Mapping[str, Any], name: str) -> Any:
        props: Mapping[str, Any] = node.get("properties") or {}
        extra = node.get("additionalProperties", True)
        if not props:
            if isinstance(extra, Mapping) and extra:
                return dict[str, self.build(extra, f"{name}Value")]  # type: ignore[misc]
            return dict[str, Any]
        required = set(node.get("required") or ())
        fields: dict[str, Any] = {}
        for i, (prop, sub) in enumerate(props.items()):
            tp = self.build(sub, f"{name}_{prop}")
            if prop in required:
                default: Any = ...
            elif isinstance(sub, Mapping) and "default" in sub:
                default = sub["default"]
            else:  # may be absent (then None); when present it must match the schema
                default = None
            fields[f"f{i}"] = (tp, Field(default=default, alias=prop))
        config = ConfigDict(
            extra="forbid" if extra is False else "ignore",
            populate_by_name=False,
            title=name,
        )
        model_name = re.sub(r"\W", "_", name) or "Output"
        return create_model(model_name, __config__=config, **fields)


class OutputValidator:
    """Parses an answer's text as JSON and validates it; returns a JSON-ready object.

    Built from a pydantic model class (validates with the class itself) or from a JSON schema
    (validates with the rebuilt types).
    """

    def __init__(self, spec: Any) -> None:
        if isinstance(spec, type) and issubclass(spec, BaseModel):
            self.adapter: TypeAdapter[Any] = TypeAdapter(spec)
        else:
            self.adapter = TypeAdapter(type_from_schema(spec))

    def accepts(self, obj: Any) -> bool:
        """True when ``obj`` (already-parsed JSON) is valid."""
        try:
            self.adapter.validate_python(obj)
        except ValidationError:
            return False
        return True

    def parse(self, text: str) -> Any:
        """The validated object of ``text``; :class:`ValueError` says what is wrong."""
        try:
            data = json.loads(_strip_fences(text))
        except ValueError as exc:
            raise ValueError(f"not valid JSON ({exc}): {_snippet(text)}") from None
        try:
            value = self.adapter.validate_python(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors()[:5]
            )
            raise ValueError(f"does not match the schema: {problems}") from None
        return self.adapter.dump_python(value, mode="json", by_alias=True)


def _strip_fences(text: str) -> str:
    """Remove a Markdown code fence around JSON (```json ... ```), which models like to add."""
    m = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, re.DOTALL)
    return m.group(1) if m else text


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


#: how a model asks for structured output: OpenAI's ``response_format``, or llama.cpp's
#: ``json_schema`` request field (grammar-constrained decoding)
STRUCTURED_MODES = ("response_format", "json_schema")


def request_fields(schema: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """The request-body fields that ask the server for output matching ``schema``."""
    if mode == "json_schema":
        return {"json_schema": dict(schema)}
    if mode == "response_format":
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": schema_name(schema), "schema": dict(schema)},
            }
        }
    raise SchemaError(f"structured_output_mode must be one of {STRUCTURED_MODES}, got {mode!r}")


def validate_generation(gen: Any, validator: OutputValidator) -> Any:
    """Set ``gen.parsed`` from its text, or mark it ``invalid_output`` (``length`` if cut off).

    ``gen`` is a :class:`fastdistill.Generation`; one that already failed is returned unchanged.
    """
    if gen.error_kind is not None or gen.text is None:
        return gen
    try:
        gen.parsed = validator.parse(gen.text)
    except ValueError as exc:
        truncated = gen.finish_reason == "length"
        gen.error_kind = "length" if truncated else "invalid_output"
        gen.error = (
            f"structured output {'cut off at the token limit and ' if truncated else ''}"
            f"invalid: {exc}"
        )
    return gen


def validator_for(runtime: Any, schema: Mapping[str, Any] | None) -> OutputValidator | None:
    """The validator of ``schema``, built once and kept in a model's runtime state.

    ``runtime`` is a model's :class:`~fastdistill_llms._runtime.ModelRuntime`; the cache is keyed
    by the schema's content, so assigning a new schema builds a new validator.
    """
    if schema is None:
        return None
    key = json.dumps(schema, sort_keys=True)
    with runtime.lock:
        cached = runtime.extra.get("validator")
        if cached is None or cached[0] != key:
            cached = runtime.extra["validator"] = (key, OutputValidator(schema))
    return cached[1]
