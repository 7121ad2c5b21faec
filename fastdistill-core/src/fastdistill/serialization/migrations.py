"""Schema versions of pipeline documents and the migration chain.

Schema history:

* **1** — steps used ``type:`` for the component name, ``config:`` for its parameters and
  ``depends_on:`` for upstream steps.
* **2** (current) — ``component:``, ``params:`` and ``after:``; a ``plugins`` map records the
  versions of the distributions whose components the document uses.

Core's migrations and each plugin's (``register_migrations``) run in ``from_version`` order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastdistill.errors import DocumentError

if TYPE_CHECKING:
    from fastdistill.registry import Registry

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
        steps = [m for m in migrations if m.meta.get("from_version") == version]
        if not any(m.plugin == "core" for m in steps) and version < CURRENT_SCHEMA_VERSION:
            raise DocumentError(f"no migration from schema_version {version} is registered")
        for m in steps:
            doc = m.obj(dict(doc))
        version += 1
        doc["schema_version"] = version
    return doc
