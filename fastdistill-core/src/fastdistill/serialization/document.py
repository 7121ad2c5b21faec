"""Pipeline documents (YAML/JSON) with ``schema_version``, safe loading and saving.

A document references components by registered name only::

    schema_version: 2
    name: text2sql
    steps:
      - name: load
        component: load_jsonl
        params: {path: data/questions.jsonl}
      - name: teacher
        component: text_generation
        after: [load]            # default: the previous step in the list
        params:
          template: "Question: {question}"
          llm: {component: embedded, params: {}}

Loading never imports a ``module:attr`` string.  Secrets are never written.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import re
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr, ValidationError

from fastdistill.errors import DocumentError
from fastdistill.serialization.hints import plugin_version_notes, provider_hint
from fastdistill.serialization.migrations import CURRENT_SCHEMA_VERSION, migrate

if TYPE_CHECKING:
    from fastdistill.pipeline.core import Pipeline
    from fastdistill.registry import Registry

_SECRET_NAME = re.compile(r"(api_?key|token|secret|password)$", re.IGNORECASE)
_STEP_KEYS = {"name", "component", "params", "after"}

logger = logging.getLogger("fastdistill.serialization")


def _registry(registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    from fastdistill.registry import Registry

    return Registry()


# ------------------------------------------------------------------ reading
def read_document(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON document file into a dict (no object construction)."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise DocumentError(f"pipeline document {str(p)!r} does not exist")
    text = p.read_text(encoding="utf-8")
    try:
        doc = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if p.suffix == ".json" else "YAML"
        raise DocumentError(f"{p}: not valid {kind}: {exc}") from None
    if not isinstance(doc, dict):
        raise DocumentError(f"{p}: a pipeline document must be a mapping at the top level")
    return doc


def load_pipeline(path: str | Path, registry: Registry | None = None) -> Pipeline:
    """Read, migrate and build the pipeline in ``path``; relative paths resolve beside it."""
    doc = read_document(path)
    try:
        return pipeline_from_document(doc, registry, Path(path).resolve().parent)
    except DocumentError as exc:
        raise DocumentError(f"{path}: {exc}") from None


def build_component(
    kind: str,
    spec: Mapping[str, Any],
    registry: Registry,
    where: str,
    document_plugins: Mapping[str, Any] | None = None,
) -> BaseModel:
    name = spec.get("component")
    if not isinstance(name, str):
        raise DocumentError(f"{where}: 'component' must be a registered name, got {name!r}")
    if ":" in name:
        raise DocumentError(
            f"{where}: component {name!r} looks like an import path; documents reference "
            "components by registered name only (see `fastdistill plugins`)"
        )
    from fastdistill.errors import UnknownComponentError

    try:
        cls = registry.get(kind, name).obj
    except UnknownComponentError as exc:
        hint = provider_hint(kind, name, registry, document_plugins)
        raise DocumentError(f"{where}: {exc}" + (f" {hint}" if hint else "")) from None
    params = dict(spec.get("params") or {})
    for key, value in list(params.items()):
        if isinstance(value, Mapping) and "component" in value:
            params[key] = build_component(
                "model", value, registry, f"{where}.{key}", document_plugins
            )
    try:
        obj: BaseModel = cls(**params)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}" for e in exc.errors()
        )
        fields = ", ".join(n for n in cls.model_fields if n != "name")
        raise DocumentError(
            f"{where} ({name}): invalid params: {details}. Parameters: {fields}"
        ) from None
    return obj


def pipeline_from_document(
    doc: Mapping[str, Any], registry: Registry | None = None, base_dir: str | Path | None = None
) -> Pipeline:
    """Build a :class:`Pipeline` from a parsed document (migrating older schema versions).

    Differences between the document's ``plugins`` versions and the installed ones are not
    errors: they are logged at ``INFO`` and kept in ``pipeline.document_notes``.
    """
    from fastdistill.pipeline.core import Pipeline

    registry = _registry(registry)
    doc = migrate(dict(doc), registry)
    raw_plugins = doc.get("plugins")
    document_plugins = raw_plugins if isinstance(raw_plugins, Mapping) else {}
    notes = plugin_version_notes(document_plugins, registry)
    for note in notes:
        logger.info("%s", note)
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        raise DocumentError("'steps' must be a non-empty list")
    pipeline = Pipeline(
        str(doc.get("name") or "pipeline"),
        description=str(doc.get("description") or ""),
        base_dir=base_dir,
    )
    previous: str | None = None
    names = [s.get("name") for s in steps if isinstance(s, Mapping)]
    edges: dict[str, list[str]] = {}
    for i, spec in enumerate(steps):
        if not isinstance(spec, Mapping):
            raise DocumentError(f"steps[{i}] must be a mapping")
        extra = set(spec) - _STEP_KEYS
        if extra:
            raise DocumentError(
                f"steps[{i}] ({spec.get('name')}): unknown key(s) {sorted(extra)}; "
                f"allowed: {sorted(_STEP_KEYS)}"
            )
        sname = str(spec.get("name") or f"step_{i}")
        step = build_component("step", spec, registry, f"step {sname!r}", document_plugins)
        step.name = sname  # type: ignore[attr-defined]
        after = spec.get("after", [previous] if previous else [])
        after = [after] if isinstance(after, str) else list(after or [])
        for up in after:
            if up not in names:
                close = difflib.get_close_matches(str(up), [str(n) for n in names], n=3)
                hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
                raise DocumentError(f"step {sname!r}: 'after' names unknown step {up!r}.{hint}")
        pipeline.add(step)  # type: ignore[arg-type]
        pipeline.component_names[sname] = str(spec["component"])
        edges[sname] = after
        previous = sname
    for sname, ups in edges.items():
        for up in ups:
            pipeline.connect(up, sname)
    # not run state: what loading noticed about the document (see plugin_version_notes)
    pipeline.document_notes = [str(n) for n in notes]  # type: ignore[attr-defined]
    return pipeline


# ------------------------------------------------------------------ writing
def _dump_value(value: Any, registry: Registry, where: str) -> Any:
    if isinstance(value, SecretStr):
        return None
    if isinstance(value, BaseModel):
        comp = registry.name_of(value)
        if comp is None:
            raise DocumentError(
                f"{where}: {type(value).__name__} is not a registered component, so the pipeline "
                "cannot be saved; register it through a plugin hook"
            )
        return {"component": comp.name, "params": _dump_params(value, registry, where)}
    if isinstance(value, (list, tuple)):
        return [_dump_value(v, registry, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _dump_value(v, registry, where) for k, v in value.items()}
    if callable(value):
        raise DocumentError(f"{where}: a Python callable cannot be saved in a document")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Path):
        return str(value)
    return json.loads(json.dumps(value, default=str))


def _dump_params(obj: BaseModel, registry: Registry, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fname, field in type(obj).model_fields.items():
        if fname == "name" or field.exclude:
            continue
        value = getattr(obj, fname)
        if _SECRET_NAME.search(fname) or isinstance(value, SecretStr):
            continue  # secrets never reach a document
        if not field.is_required() and value == field.get_default(call_default_factory=True):
            continue
        out[fname] = _dump_value(value, registry, f"{where}.{fname}")
    return out


def _plugin_versions(registry: Registry, components: set[str]) -> dict[str, str]:
    versions: dict[str, str] = {}
    for comp in registry.components():
        if comp.name in components and comp.distribution:
            versions[comp.distribution] = comp.version or "unknown"
    with contextlib.suppress(metadata.PackageNotFoundError):
        versions.setdefault("fastdistill-core", metadata.version("fastdistill-core"))
    return dict(sorted(versions.items()))


def pipeline_to_document(pipeline: Pipeline, registry: Registry | None = None) -> dict[str, Any]:
    """The pipeline as a document dict (current schema version)."""
    registry = _registry(registry)
    steps: list[dict[str, Any]] = []
    used: set[str] = set()
    order = list(pipeline.steps)
    for i, (name, step) in enumerate(pipeline.steps.items()):
        comp = registry.name_of(step)
        if comp is None:
            raise DocumentError(
                f"step {name!r}: {type(step).__name__} is not registered by any plugin, so the "
                "pipeline cannot be saved; register it with a register_steps hook"
            )
        used.add(comp.name)
        entry: dict[str, Any] = {"name": name, "component": comp.name}
        ups = pipeline.upstream(name)
        default_after = [order[i - 1]] if i else []
        if ups != default_after:
            entry["after"] = ups
        params = _dump_params(step, registry, f"step {name!r}")
        for v in params.values():
            if isinstance(v, dict) and "component" in v:
                used.add(v["component"])
        if params:
            entry["params"] = params
        steps.append(entry)
    doc: dict[str, Any] = {
        "schema_version": CURRENT_SCHEMA_VERSION,
        "name": pipeline.name,
    }
    if pipeline.description:
        doc["description"] = pipeline.description
    doc["plugins"] = _plugin_versions(registry, used)
    doc["steps"] = steps
    return doc


def rebase_paths(doc: dict[str, Any], pipeline: Pipeline, old: Path, new: Path) -> None:
    """Rewrite the relative local paths of the steps' ``path_params`` in ``doc`` (relative to
    folder ``old``) so they are relative to folder ``new`` (absolute when no relative path
    exists, e.g. on another drive)."""
    import os

    for entry in doc.get("steps", []):
        step = pipeline.steps.get(entry.get("name"))
        params = entry.get("params") or {}
        for key in getattr(type(step), "path_params", ()):
            value = params.get(key)
            if not isinstance(value, str) or "://" in value:
                continue
            local = Path(value).expanduser()
            if local.is_absolute():
                continue
            absolute = (old / local).resolve()
            try:
                params[key] = os.path.relpath(absolute, new)
            except ValueError:  # no relative path between them
                params[key] = str(absolute)


def save_document(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write a document as YAML or JSON by the file's suffix."""
    import yaml

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix == ".json":
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    else:
        text = yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True, width=100)
    p.write_text(text, encoding="utf-8")
    return p


def dump_yaml(doc: Mapping[str, Any]) -> str:
    """A document as YAML text."""
    import yaml

    return str(yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True, width=100))
