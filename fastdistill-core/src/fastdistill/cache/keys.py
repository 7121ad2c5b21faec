"""Request keys of the LLM response cache: what identifies a request, hashed.

A request is identified by the sha256 of the canonical JSON (sorted keys, compact, UTF-8) of the
model's identity (secret-looking keys removed), the messages, the generation parameters and the
structured-output schema.  See :mod:`fastdistill.cache.llm_cache`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import re
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastdistill.engine.codec import canonical, canonical_strict

if TYPE_CHECKING:
    from fastdistill.models import LLM, Message

#: version of the key material; bump it to invalidate every existing entry
KEY_VERSION = 1
#: model attributes that carry a structured-output schema or response format
SCHEMA_ATTRS = (
    "structured_output", "structured_output_mode", "response_format", "output_schema",
    "json_schema",
)

#: mapping keys treated as secrets (``api_key``, ``auth_token``, ``Authorization`` ...), never
#: ``max_tokens``
_SECRET_KEY = re.compile(
    r"(^|[_\-])(api_?key|token|secret|password|authori[sz]ation|credentials?|auth)$", re.I
)


def _scrub(value: Any) -> Any:
    """``value`` without mapping entries whose key looks like a secret (recursively)."""
    if isinstance(value, Mapping):
        return {str(k): _scrub(v) for k, v in value.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def _jsonable(obj: Any) -> Any:
    """JSON fallback for schema classes, pydantic objects and paths; anything else is refused."""
    from pydantic import BaseModel, SecretStr

    if isinstance(obj, SecretStr):
        return "**secret**"
    if isinstance(obj, type) and issubclass(obj, BaseModel):
        return obj.model_json_schema()
    if isinstance(obj, BaseModel):
        return _scrub(obj.model_dump(mode="json"))
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not part of a cacheable request")


_SCHEMA_NAMES: weakref.WeakKeyDictionary[type, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _schema_names(llm: LLM) -> tuple[str, ...]:
    """The :data:`SCHEMA_ATTRS` a model can have: its class's (memoised per class: looking up
    a missing attribute on a pydantic model raises inside, which is slow) and its own."""
    cls = type(llm)
    names = _SCHEMA_NAMES.get(cls)
    if names is None:
        fields = getattr(cls, "model_fields", {})
        names = tuple(a for a in SCHEMA_ATTRS if a in fields or hasattr(cls, a))
        with contextlib.suppress(TypeError):
            _SCHEMA_NAMES[cls] = names
    own = getattr(llm, "__dict__", None) or {}
    extra = tuple(a for a in SCHEMA_ATTRS if a in own and a not in names)
    return names + extra if extra else names


def _schema_of(llm: LLM, overrides: Mapping[str, Any]) -> dict[str, Any]:
    found = {a: getattr(llm, a, None) for a in _schema_names(llm)}
    found.update({a: overrides[a] for a in SCHEMA_ATTRS if a in overrides})
    # a schema class (e.g. a pydantic model) is kept; other callables are not request content
    return {
        k: v for k, v in found.items()
        if v is not None and (isinstance(v, type) or not callable(v))
    }


def request_material(
    llm: LLM, messages: Sequence[Message], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """What identifies a request (no secrets): the input of :func:`request_key`."""
    params = {**dict(getattr(llm, "generation_kwargs", None) or {}), **dict(overrides)}
    return {
        "v": KEY_VERSION,
        "model": _scrub(llm.identity()),
        "messages": [dict(m) for m in messages],
        "params": _scrub(params),
        "schema": _schema_of(llm, overrides),
    }


def request_key(llm: LLM, messages: Sequence[Message], overrides: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of :func:`request_material`.

    Raises ``TypeError`` when the request holds a value with no canonical JSON form (such a
    request is never cached).
    """
    material = request_material(llm, messages, overrides)
    return hashlib.sha256(canonical(material, _jsonable)).hexdigest()


class KeyMemo:
    """Request keys for many requests to the same models, with each model's part encoded once.

    ``memo.key(llm, messages, overrides)`` equals :func:`request_key`: the canonical JSON of
    the request material has its keys sorted, so it is ``{"messages": ..., "model": ...,
    "params": ..., "schema": ..., "v": ...}`` and everything after the messages depends on the
    model only (without per-call overrides).  That tail is encoded once per model and reused
    while the model's ``generation_kwargs`` compare equal to those it was encoded with; a model
    whose other identity-defining attributes change must not be used with the same memo (the
    engine keeps one memo per step and run, during which models are not reconfigured).
    Requests with overrides take the full path.
    """

    def __init__(self) -> None:
        self._tails: dict[int, tuple[Any, dict[str, Any], bytes]] = {}

    def _tail(self, llm: LLM) -> bytes:
        gk = getattr(llm, "generation_kwargs", None) or {}
        entry = self._tails.get(id(llm))
        if entry is not None and entry[0] is llm and entry[1] == gk:
            return entry[2]
        rest = request_material(llm, [], {})
        del rest["messages"]
        body = canonical(rest, _jsonable)  # b'{"model":...,"v":1}'
        tail = b"," + body[1:]
        self._tails[id(llm)] = (llm, copy.deepcopy(dict(gk)), tail)
        return tail

    def key(self, llm: LLM, messages: Sequence[Message], overrides: Mapping[str, Any]) -> str:
        """The request key of ``llm`` answering ``messages`` (see :func:`request_key`)."""
        if overrides:
            return request_key(llm, messages, overrides)
        try:  # the usual case: a list of plain dicts of strings, encoded as they are
            head = canonical_strict(messages)
        except TypeError:  # mappings of other kinds, schema objects, paths ...
            head = canonical([dict(m) for m in messages], _jsonable)
        return hashlib.sha256(b'{"messages":' + head + self._tail(llm)).hexdigest()
