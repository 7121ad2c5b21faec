"""What the registry records: components (eager or lazy), plugins, and the ``register``
callable (:class:`Registrar`) handed to each plugin's hooks."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastdistill.errors import PluginError

if TYPE_CHECKING:
    from fastdistill.registry import Registry


_UNSET: Any = object()
_TARGET_RE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:"
    r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
)


def _path_of(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


@dataclass(frozen=True)
class ComponentInfo:
    """One registered component: what it is, and which plugin and distribution provide it.

    ``target`` is set for a lazy registration: the ``"module:QualName"`` string the plugin gave,
    or ``"module:loader()"`` for a loader callable.  :attr:`obj` loads such a component on first
    access (and keeps it); :attr:`loaded` says whether that happened.
    """

    name: str
    kind: str
    plugin: str
    distribution: str | None
    version: str | None
    meta: Mapping[str, Any] = field(default_factory=dict)
    target: str | None = None
    #: the registered object, or the zero-arg loader / target string of a lazy registration
    source: Any = field(default=None, repr=False, compare=False)
    _cache: list[Any] = field(default_factory=list, repr=False, compare=False)

    @property
    def lazy(self) -> bool:
        """True when the plugin registered a target string or a loader, not the object."""
        return self.target is not None

    @property
    def loaded(self) -> bool:
        """True once :attr:`obj` is available without importing anything."""
        return not self.lazy or bool(self._cache)

    @property
    def obj(self) -> Any:
        """The component (class or function); a lazy one is imported on first access.

        :raises PluginError: a lazy target that cannot be imported or called, naming the
            component, its plugin and distribution, with the original exception chained.
        """
        if not self.lazy:
            return self.source
        if not self._cache:
            try:
                if isinstance(self.source, str):
                    module_name, _, qual = self.source.partition(":")
                    value: Any = importlib.import_module(module_name)
                    for part in qual.split("."):
                        value = getattr(value, part)
                else:
                    value = self.source()
                if value is None:
                    raise TypeError("the loader returned None")
            except Exception as exc:
                raise PluginError(
                    f"{self.kind} {self.name!r} registered by plugin {self.plugin!r} "
                    f"(distribution {self.distribution or 'unknown'!r}) could not be loaded from "
                    f"{self.target}: {type(exc).__name__}: {exc}"
                ) from exc
            if not self._cache:
                self._cache.append(value)
        return self._cache[0]

    @property
    def qualname(self) -> str:
        """``module:QualName`` of the component (a lazy one: its target, nothing imported).

        For display only: never imported back from a document.
        """
        return self.target if self.target is not None else _path_of(self.source)


@dataclass
class PluginInfo:
    """A discovered plugin: its entry point, distribution, hooks, components and load error."""

    name: str
    distribution: str | None
    version: str | None
    location: str | None = None
    hooks: list[str] = field(default_factory=list)
    components: list[ComponentInfo] = field(default_factory=list)
    error: str | None = None
    #: problems that do not stop the plugin (e.g. a component name another plugin also uses)
    warnings: list[str] = field(default_factory=list)
    traceback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary, as printed by ``fastdistill plugins --json``."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "location": self.location,
            "hooks": sorted(self.hooks),
            "components": [
                {"name": c.name, "kind": c.kind, "object": c.qualname} for c in self.components
            ],
            "error": self.error,
            "warnings": list(self.warnings),
        }


def default_component_name(obj: Any) -> str:
    """``component_name`` class attribute, else the snake_case class (or function) name."""
    explicit = getattr(obj, "component_name", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    raw = getattr(obj, "__name__", type(obj).__name__)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", raw).lower()


class Registrar:
    """The ``register`` callable handed to a plugin's hook: validates and records components."""

    def __init__(self, registry: Registry, kind: str, plugin: PluginInfo) -> None:
        self._registry = registry
        self._kind = kind
        self._plugin = plugin

    def __call__(
        self,
        obj: Any = _UNSET,
        name: str | None = None,
        *,
        loader: Callable[[], Any] | None = None,
        **meta: Any,
    ) -> None:
        """Register ``obj`` under ``name`` (default: :func:`default_component_name`).

        Lazily: ``obj`` a ``"package.module:QualName"`` string, or ``loader`` a zero-argument
        callable returning the object; ``name`` is then required and nothing is imported until
        the component is used.
        """
        where = f"plugin {self._plugin.name!r}"
        target: str | None = None
        if loader is not None:
            if obj is not _UNSET:
                raise PluginError(f"{where}: register() takes an object or loader=, not both")
            if not callable(loader):
                raise PluginError(f"{where}: loader= must be a zero-argument callable")
            obj, target = loader, f"{_path_of(loader)}()"
        elif obj is _UNSET or obj is None:
            raise PluginError(f"{where} registered None as a {self._kind}")
        elif isinstance(obj, str):
            if not _TARGET_RE.fullmatch(obj):
                raise PluginError(
                    f"{where} registered {obj!r} as a {self._kind}: a lazy target is written "
                    "'package.module:QualName'"
                )
            target = obj
        if target is not None and not name:
            raise PluginError(f"{where}: a lazy {self._kind} registration ({target}) needs name=")
        comp_name = name or default_component_name(obj)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", comp_name):
            raise PluginError(f"{where} registered an invalid {self._kind} name {comp_name!r}")
        info = ComponentInfo(
            name=comp_name,
            kind=self._kind,
            plugin=self._plugin.name,
            distribution=self._plugin.distribution,
            version=self._plugin.version,
            meta=dict(meta),
            target=target,
            source=obj,
        )
        self._registry._add_component(info)
        self._plugin.components.append(info)
