"""The engine's JSON codec: orjson (fast, UTF-8 bytes), with the stdlib as a fallback.

``dumps`` behaves like ``json.dumps(obj, ensure_ascii=False, default=str)`` for what rows hold
(str, int, float, bool, None, lists, dicts, anything else through ``str``); integers beyond 64
bits and non-string keys take the stdlib path, so no row is ever refused.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import orjson

_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS
_SORTED = _OPTS | orjson.OPT_SORT_KEYS


def _default(obj: Any) -> Any:
    return str(obj)


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes of ``obj``."""
    try:
        return orjson.dumps(obj, default=_default, option=_OPTS)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(obj, ensure_ascii=False, default=str).encode("utf-8")


#: :func:`dumps` without the stdlib fallback: raises ``TypeError`` (``orjson.JSONEncodeError``)
#: for what only the fallback can write (integers beyond 64 bits, non-string keys)
dumps_strict = partial(orjson.dumps, default=_default, option=_OPTS)


def canonical(obj: Any, default: Any = _default) -> bytes:
    """Sorted-key compact JSON bytes (for hashing)."""
    try:
        return orjson.dumps(obj, default=default, option=_SORTED)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          default=default).encode("utf-8")


#: :func:`canonical` without a ``default`` and without the stdlib fallback: raises ``TypeError``
#: for anything but plain JSON values (the caller then takes :func:`canonical`)
canonical_strict = partial(orjson.dumps, option=_SORTED)

loads = orjson.loads
