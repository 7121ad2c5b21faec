"""The entry points of one group, read from the installed ``*.dist-info`` folders on ``sys.path``.

:func:`entry_points` gives what ``importlib.metadata.entry_points(group=...)`` gives (same
entry points, same order, same distribution names and versions, the first distribution of a
name on ``sys.path`` winning), without importing :mod:`importlib.metadata`, which costs more
than a tenth of ``fastdistill.Registry()`` (it imports ``email``, ``zipfile``, ``csv`` ...).
Only the ``entry_points.txt`` files that mention the group are parsed, and only their
distributions' metadata headers are read.

The fast path covers plain folders on ``sys.path`` found by the standard path finder.  Anything
else (a zip or egg on ``sys.path``, another meta-path finder that provides distributions) is left
to :mod:`importlib.metadata` itself.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from importlib import import_module
from typing import Any

#: ``importlib.metadata.EntryPoint.pattern``: ``module[:attr.attr] [extras]``
_PATTERN = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")
_INFO_SUFFIXES = (".dist-info", ".egg-info")


class EntryPoint:
    """One entry point: ``name = value`` in section ``group`` of a distribution's
    ``entry_points.txt``; ``dist_name`` and ``dist_version`` come from its metadata.

    A plain class, not a dataclass: building a dataclass costs about half a millisecond, a tenth
    of what this module saves per process.
    """

    __slots__ = ("name", "value", "group", "dist_name", "dist_version")

    def __init__(
        self, name: str, value: str, group: str, dist_name: str | None, dist_version: str | None
    ) -> None:
        self.name = name
        self.value = value
        self.group = group
        self.dist_name = dist_name
        self.dist_version = dist_version

    def _key(self) -> tuple[str, str, str, str | None, str | None]:
        return (self.name, self.value, self.group, self.dist_name, self.dist_version)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EntryPoint) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"EntryPoint(name={self.name!r}, value={self.value!r}, group={self.group!r}, "
            f"dist_name={self.dist_name!r}, dist_version={self.dist_version!r})"
        )

    def load(self) -> Any:
        """Import the module and return the named object (as ``EntryPoint.load`` does)."""
        match = _PATTERN.match(self.value)
        if match is None:
            raise ValueError(f"invalid entry point value {self.value!r}")
        value: Any = import_module(match.group("module"))
        for attr in filter(None, (match.group("attr") or "").split(".")):
            value = getattr(value, attr)
        return value


def _normalize(name: str) -> str:
    """``importlib.metadata.Prepared.normalize``."""
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return None


def _sections(text: str) -> Iterator[tuple[str, str, str]]:
    """``(section, name, value)`` for each ``name = value`` line (``Sectioned.section_pairs``)."""
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
            continue
        if section is not None:
            name, value = line.split("=", 1)
            yield section, name.strip(), value.strip()


def _headers(text: str) -> dict[str, str]:
    """The first ``Name`` and ``Version`` headers of a metadata file (RFC 822 style, as the
    ``email`` parser reads them: ``value.lstrip(' \\t')``, continuation lines kept)."""
    found: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if not line.strip():
            break
        if line[0] in " \t":
            if current is not None:
                found[current] += "\n" + line
            continue
        key, sep, value = line.partition(":")
        current = None
        if not sep:
            break
        key = key.lower()
        if key in ("name", "version") and key not in found:
            found[key] = value.lstrip(" \t")
            current = key
    return found


def _distribution_folders() -> list[str] | None:
    """Each distribution's metadata folder, first of a name on ``sys.path`` only, in
    :mod:`importlib.metadata`'s order; ``None`` when the fast path does not apply."""
    import importlib.machinery

    for finder in sys.meta_path:
        if finder is not importlib.machinery.PathFinder and hasattr(finder, "find_distributions"):
            return None
    seen: set[str] = set()
    folders: list[str] = []
    for entry in sys.path:
        if not isinstance(entry, str):
            return None
        root = entry or "."
        try:
            children = os.listdir(root)
        except OSError:
            if os.path.exists(root):  # a zip file: importlib.metadata reads it
                return None
            continue
        if os.path.basename(root).lower().endswith(".egg"):
            return None
        # importlib.metadata's Lookup: grouped by normalized name, in order of first appearance
        by_name: dict[str, list[str]] = {}
        for child in children:
            low = child.lower()
            if not low.endswith(_INFO_SUFFIXES):
                continue
            if not child.endswith(_INFO_SUFFIXES):
                return None  # 'X.DIST-INFO': importlib.metadata names it from its metadata
            by_name.setdefault(_normalize(low.rpartition(".")[0].partition("-")[0]), []).append(
                child
            )
        for name, group in by_name.items():
            if name not in seen:
                seen.add(name)
                folders.append(os.path.join(root, group[0]))
    return folders


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group`` of every installed distribution, in discovery order."""
    folders = _distribution_folders()
    if folders is None:
        return _from_importlib(group)
    found: list[EntryPoint] = []
    marker = f"[{group}]"
    for folder in folders:
        text = _read(os.path.join(folder, "entry_points.txt"))
        if not text or marker not in text:
            continue
        pairs = [(n, v) for section, n, v in _sections(text) if section == group]
        if not pairs:
            continue
        meta = _headers(
            _read(os.path.join(folder, "METADATA"))
            or _read(os.path.join(folder, "PKG-INFO"))
            or ""
        )
        found.extend(
            EntryPoint(n, v, group, meta.get("name"), meta.get("version")) for n, v in pairs
        )
    return found


def _from_importlib(group: str) -> list[EntryPoint]:
    from importlib import metadata

    return [
        EntryPoint(
            ep.name,
            ep.value,
            group,
            ep.dist.metadata["Name"] if ep.dist is not None else None,
            ep.dist.version if ep.dist is not None else None,
        )
        for ep in metadata.entry_points(group=group)
    ]
