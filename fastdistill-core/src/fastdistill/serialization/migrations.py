"""Schema versions of pipeline documents and the migration chain.

Schema history:

* **1** — steps used ``type:`` for the component name, ``config:`` for its parameters and
  ``depends_on:`` for upstream steps.
* **2** (current) — ``component:``, ``params:`` and ``after:``; a ``plugins`` map records the
  versions of the distributions whose components the document uses.

Migration order (well defined): for each ``from_version`` N, starting at the document's own
version, core's migration N -> N+1 runs first (it changes the document's structure and sets
``schema_version`` to N+1), then every plugin migration registered with ``from_version=N``, in
order of plugin name, then migration name.  A plugin migration therefore receives the whole
document (a private copy) in core's N+1 layout, with its own components' parameters still as they
were written for N, and returns the upgraded document.  A migration that raises or returns
something other than a mapping is a :class:`~fastdistill.errors.DocumentError` naming it and its
plugin.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastdistill.errors import DocumentError

if TYPE_CHECKING:
    from fastdistill.registry import ComponentInfo, Registry

CURRENT_SCHEMA_VERSION = 2


def v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """Rename ``type``/``config``/``depends_on`` to ``component``/``params``/``after``."""
    steps = []
    for spec in doc.get("steps", []):
        spec = dict(spec)
        if "type" in spec:
            spec["component"] = spec.pop("type")
        if "config" in spec:
            spec["params"] = spec.pop("config")
        if "depends_on" in spec:
            spec["after"] = spec.pop("depends_on")
        params = spec.get("params") or {}
        for key, value in list(params.items()):
            if isinstance(value, dict) and "type" in value:
                value = dict(value)
                value["component"] = value.pop("type")
                if "config" in value:
                    value["params"] = value.pop("config")
                params[key] = value
        steps.append(spec)
    return {**doc, "steps": steps, "schema_version": 2}


def migrate(doc: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """Upgrade ``doc`` to :data:`CURRENT_SCHEMA_VERSION`; a newer document is an error."""
    version = doc.get("schema_version")
    if version is None:
        raise DocumentError(
            "the document has no 'schema_version'; add 'schema_version: "
            f"{CURRENT_SCHEMA_VERSION}' at the top"
        )
    if not isinstance(version, int) or version < 1:
        raise DocumentError(f"schema_version must be a positive integer, got {version!r}")
    if version > CURRENT_SCHEMA_VERSION:
        raise DocumentError(
            f"the document has schema_version {version}, newer than this installation supports "
            f"({CURRENT_SCHEMA_VERSION}); upgrade with `pip install -U fastdistill-core` and the "
            "plugins it uses"
        )
    migrations = registry.migrations()
    while version < CURRENT_SCHEMA_VERSION:
        steps = migration_order(m for m in migrations if m.meta.get("from_version") == version)
        if not any(m.plugin == "core" for m in steps):
            raise DocumentError(f"no migration from schema_version {version} is registered")
        for m in steps:
            doc = _apply(m, doc, version)
        version += 1
        doc["schema_version"] = version
    return doc


def migration_order(migrations: Any) -> list[ComponentInfo]:
    """Core's migrations first, then plugins' by plugin name, then by migration name."""
    return sorted(migrations, key=lambda m: (m.plugin != "core", m.plugin, m.name))


def _apply(migration: ComponentInfo, doc: dict[str, Any], version: int) -> dict[str, Any]:
    owner = f"migration {migration.name!r} of plugin {migration.plugin!r}" + (
        f" ({migration.distribution})" if migration.distribution else ""
    )
    try:
        out = migration.obj(copy.deepcopy(doc))
    except Exception as exc:
        raise DocumentError(
            f"{owner} failed while upgrading the document from schema_version {version}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(out, Mapping):
        raise DocumentError(
            f"{owner} returned {type(out).__name__}, not the upgraded document (a mapping)"
        )
    return dict(out)
