"""Helpful messages for pipeline documents: which package provides a component, version notes.

An unknown component name in a document is usually a package that is not installed (or a plugin
that failed to load, or one filtered out by ``FASTDISTILL_LOAD_PLUGINS``).  The hint says which,
from two sources: a built-in table of first-party components (``text_generation`` ->
``fastdistill-llms``), and the ``plugins`` map of the document itself, which records the
distributions (and versions) it was written with.

A document's ``plugins`` versions are compared with what is installed.  A difference is never
fatal (only a newer ``schema_version`` is): it becomes a note, logged at ``INFO`` on the
``fastdistill.serialization`` logger and kept on the loaded pipeline (``document_notes``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastdistill.registry import Registry

#: first-party components: name -> (kind, distribution that provides it)
FIRST_PARTY_COMPONENTS: Mapping[str, tuple[str, str]] = {
    **{
        name: ("step", "fastdistill-steps")
        for name in (
            "load_jsonl", "load_parquet", "canonicalize", "compute_hash", "dedup_exact",
            "sqlite_schema", "extract_sql", "rule_filter", "sqlite_exec_eval", "score_exec",
            "quality_gate", "export_jsonl", "export_chat",
        )
    },
    "text_generation": ("step", "fastdistill-llms"),
    "openai_compat": ("model", "fastdistill-llms"),
    "embedded": ("model", "fastdistill-llms"),
    "cuda_round_robin": ("placement", "fastdistill-cuda"),
    "cuda_auto": ("placement", "fastdistill-cuda"),
    "ray": ("engine", "fastdistill-ray"),
}


def _installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _distribution_state(distribution: str, registry: Registry) -> str:
    """Why ``distribution``'s components are not available, as a sentence fragment."""
    for plugin in registry.plugins():
        if plugin.distribution == distribution and plugin.error:
            return f"{distribution} is installed but its plugin failed to load: {plugin.error}"
    if _installed_version(distribution) is None:
        return f"install it with `pip install {distribution}`"
    return (
        f"{distribution} is installed but its plugin was not loaded "
        "(check FASTDISTILL_LOAD_PLUGINS / FASTDISTILL_BLOCK_PLUGINS)"
    )


def provider_hint(
    kind: str,
    name: str,
    registry: Registry,
    document_plugins: Mapping[str, object] | None = None,
) -> str:
    """Where an unknown component may come from (empty when nothing useful is known).

    :param kind: the component kind that was looked up (``step``, ``model`` ...).
    :param name: the unknown name.
    :param registry: the registry that did not know it.
    :param document_plugins: the document's ``plugins`` map (distribution -> version).
    """
    parts: list[str] = []
    known = FIRST_PARTY_COMPONENTS.get(name)
    if known is not None:
        dist = known[1]
        state = _distribution_state(dist, registry)
        parts.append(f"{name!r} is provided by the package {dist}: {state}.")
    else:
        registered = {c.name for c in registry.components(kind)}
        candidates = [n for n, (k, _) in FIRST_PARTY_COMPONENTS.items()
                      if k == kind and n not in registered]
        for close in difflib.get_close_matches(name, candidates, n=2):
            dist = FIRST_PARTY_COMPONENTS[close][1]
            how = "" if _installed_version(dist) else f": pip install {dist}"
            parts.append(f"Did you mean {close!r} (from {dist}{how})?")
    missing = sorted(
        (str(dist), str(version))
        for dist, version in (document_plugins or {}).items()
        if dist != "fastdistill-core"
        and not any(p.distribution == dist and not p.error for p in registry.plugins())
    )
    if known is None and missing:
        listed = ", ".join(f"{d} {v}" for d, v in missing)
        parts.append(
            f"The document was written with {listed}, not loaded here: "
            + "; ".join(_distribution_state(d, registry) for d, _ in missing) + "."
        )
    return " ".join(parts)


# ----------------------------------------------------------------------------- versions
def _release(version: str) -> tuple[int, ...] | None:
    match = re.match(r"v?(\d+(?:\.\d+)*)", str(version).strip())
    return tuple(int(x) for x in match.group(1).split(".")) if match else None


@dataclass(frozen=True)
class VersionNote:
    """A distribution whose version differs between a document and this installation.

    ``relation`` is ``newer`` (the document was written with a newer version than installed),
    ``older``, ``different`` (versions not comparable) or ``missing`` (not installed here).
    """

    distribution: str
    document_version: str
    installed_version: str | None
    relation: str

    def __str__(self) -> str:
        if self.relation == "missing":
            return (f"the document was written with {self.distribution} "
                    f"{self.document_version}, which is not installed")
        advice = " (upgrade it if a component misbehaves)" if self.relation == "newer" else ""
        return (f"the document was written with {self.distribution} {self.document_version}; "
                f"{self.installed_version} is installed{advice}")


def plugin_version_notes(
    document_plugins: object, registry: Registry
) -> list[VersionNote]:
    """Compare a document's ``plugins`` map with the installed distributions (never raises)."""
    if not isinstance(document_plugins, Mapping):
        return []
    installed: dict[str, str | None] = {
        p.distribution: p.version for p in registry.plugins() if p.distribution and not p.error
    }
    notes: list[VersionNote] = []
    for dist, doc_version in sorted(document_plugins.items(), key=lambda kv: str(kv[0])):
        dist, doc_version = str(dist), str(doc_version)
        have = installed.get(dist) or _installed_version(dist)
        if have is None:
            notes.append(VersionNote(dist, doc_version, None, "missing"))
            continue
        if have == doc_version:
            continue
        a, b = _release(doc_version), _release(have)
        if a is None or b is None or a == b:
            relation = "different"
        else:
            relation = "newer" if a > b else "older"
        notes.append(VersionNote(dist, doc_version, have, relation))
    return notes
