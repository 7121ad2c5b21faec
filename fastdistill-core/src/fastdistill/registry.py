"""The component registry: a fresh pluggy ``PluginManager`` per :class:`Registry` instance.

Plugins are discovered through entry points in the group ``fastdistill``.  Core registers its own
built-ins through its own entry point and the same hooks as any third-party plugin.

User controls (read from the ``env`` mapping given to :class:`Registry`, ``os.environ`` by
default):

``FASTDISTILL_LOAD_PLUGINS``
    comma-separated entry-point or distribution names: load only these (core is always loaded).
    An empty value loads no external plugin.
``FASTDISTILL_BLOCK_PLUGINS``
    comma-separated entry-point or distribution names never to load.
``FASTDISTILL_STRICT_PLUGINS``
    ``1`` turns a broken plugin into an exception instead of a reported load error.
``FASTDISTILL_TRACE_PLUGINS``
    ``1`` traces every hook call to stderr.
"""

from __future__ import annotations

import difflib
import re
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from fastdistill import hookspecs
from fastdistill.errors import PluginError, UnknownComponentError

ENTRY_POINT_GROUP = "fastdistill"
CORE_PLUGIN = "core"

#: hook name -> component kind it registers
HOOK_KINDS: dict[str, str] = {
    "register_steps": "step",
    "register_models": "model",
    "register_transports": "transport",
    "register_placements": "placement",
    "register_engines": "engine",
    "register_migrations": "migration",
}


@dataclass(frozen=True)
class ComponentInfo:
    """One registered component: what it is, and which plugin and distribution provide it."""

    name: str
    kind: str
    obj: Any
    plugin: str
    distribution: str | None
    version: str | None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def qualname(self) -> str:
        """``module:QualName`` of the component, for display only (never imported back)."""
        obj = self.obj
        return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


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

    def __call__(self, obj: Any, name: str | None = None, **meta: Any) -> None:
        """Register ``obj`` under ``name`` (default: :func:`default_component_name`)."""
        if obj is None:
            raise PluginError(f"plugin {self._plugin.name!r} registered None as a {self._kind}")
        comp_name = name or default_component_name(obj)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", comp_name):
            raise PluginError(
                f"plugin {self._plugin.name!r} registered an invalid {self._kind} name {comp_name!r}"
            )
        info = ComponentInfo(
            name=comp_name,
            kind=self._kind,
            obj=obj,
            plugin=self._plugin.name,
            distribution=self._plugin.distribution,
            version=self._plugin.version,
            meta=dict(meta),
        )
        self._registry._add_component(info)
        self._plugin.components.append(info)


def _split(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


class Registry:
    """Components contributed by plugins, built on a private pluggy ``PluginManager``.

    :param discover: load plugins from installed entry points (default ``True``).
    :param env: where the ``FASTDISTILL_*_PLUGINS`` controls are read (default ``os.environ``).
    :param strict: raise on a broken plugin instead of recording its error.
    :param prefer: ``{component name: distribution}`` to settle a name registered twice.
    """

    def __init__(
        self,
        *,
        discover: bool = True,
        env: Mapping[str, str] | None = None,
        strict: bool | None = None,
        prefer: Mapping[str, str] | None = None,
    ) -> None:
        import os

        self._env = dict(os.environ if env is None else env)
        self._strict = (
            strict if strict is not None else self._env.get("FASTDISTILL_STRICT_PLUGINS") == "1"
        )
        self._prefer = dict(prefer or {})
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        if self._env.get("FASTDISTILL_TRACE_PLUGINS") == "1":
            self._pm.trace.root.setwriter(sys.stderr.write)
            self._pm.enable_tracing()
        self._components: dict[tuple[str, str], ComponentInfo] = {}
        self._plugins: dict[str, PluginInfo] = {}
        if discover:
            self._discover()

    # ----------------------------------------------------------------- discovery
    def _discover(self) -> None:
        only = _split(self._env.get("FASTDISTILL_LOAD_PLUGINS"))
        blocked = _split(self._env.get("FASTDISTILL_BLOCK_PLUGINS")) or set()
        eps = sorted(
            metadata.entry_points(group=ENTRY_POINT_GROUP),
            key=lambda ep: (ep.name != CORE_PLUGIN, ep.name),
        )
        for ep in eps:
            dist = ep.dist
            dist_name = dist.metadata["Name"] if dist is not None else None
            names = {ep.name, dist_name}
            if ep.name != CORE_PLUGIN:
                if names & blocked:
                    self._pm.set_blocked(ep.name)
                    continue
                if only is not None and not names & only:
                    continue
            info = PluginInfo(
                name=ep.name,
                distribution=dist_name,
                version=dist.version if dist is not None else None,
            )
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                self._record_error(info, exc)
                continue
            info.location = getattr(module, "__file__", None)
            self.add_plugin(module, info=info)

    def _record_error(self, info: PluginInfo, exc: BaseException) -> None:
        info.error = f"{type(exc).__name__}: {exc}"
        info.traceback = "".join(traceback.format_exception(exc))
        self._plugins[info.name] = info
        if self._strict:
            raise PluginError(
                f"plugin {info.name!r} (distribution {info.distribution!r}) failed to load: "
                f"{info.error}"
            ) from exc

    def add_plugin(
        self,
        plugin: ModuleType | object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
        info: PluginInfo | None = None,
    ) -> PluginInfo:
        """Register a plugin object (usually a module with ``@hookimpl`` functions).

        Used by discovery, and by tests that add a plugin to one fresh registry only.
        """
        if info is None:
            pname = name or getattr(plugin, "__name__", None) or repr(plugin)
            info = PluginInfo(name=pname, distribution=distribution, version=version)
        if info.name in self._plugins:
            raise PluginError(f"a plugin named {info.name!r} is already registered")
        try:
            self._pm.register(plugin, name=info.name)
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            self._record_error(info, exc)
            return info
        impls = {
            hook_name: [
                impl
                for impl in getattr(self._pm.hook, hook_name).get_hookimpls()
                if impl.plugin is plugin
            ]
            for hook_name in HOOK_KINDS
        }
        info.hooks = [h for h, found in impls.items() if found]
        self._plugins[info.name] = info
        try:
            for hook_name, found in impls.items():
                registrar = Registrar(self, HOOK_KINDS[hook_name], info)
                for impl in found:
                    # hooks are called one plugin at a time, bypassing pluggy's traced call
                    # path, so FASTDISTILL_TRACE_PLUGINS is honoured here (no-op when off)
                    self._pm.trace(f"{hook_name}(register) <- plugin {info.name!r}")
                    impl.function(register=registrar)
        except Exception as exc:
            for comp in info.components:
                self._components.pop((comp.kind, comp.name), None)
            info.components.clear()
            self._pm.unregister(plugin)
            if isinstance(exc, PluginError) and "registered by both" in str(exc):
                raise
            self._record_error(info, exc)
        return info

    def _add_component(self, info: ComponentInfo) -> None:
        key = (info.kind, info.name)
        existing = self._components.get(key)
        if existing is not None:
            chosen = self._prefer.get(info.name)
            if chosen in (existing.distribution, existing.plugin):
                return
            if chosen in (info.distribution, info.plugin):
                self._components[key] = info
                return
            raise PluginError(
                f"{info.kind} {info.name!r} is registered by both "
                f"{existing.distribution or existing.plugin!r} (plugin {existing.plugin!r}) and "
                f"{info.distribution or info.plugin!r} (plugin {info.plugin!r}); uninstall one, "
                f"block one with FASTDISTILL_BLOCK_PLUGINS, or pick one with "
                f"Registry(prefer={{{info.name!r}: <distribution>}})"
            )
        self._components[key] = info

    # ----------------------------------------------------------------- queries
    def get(self, kind: str, name: str) -> ComponentInfo:
        """The component of ``kind`` named ``name``; an unknown name lists close names."""
        found = self._components.get((kind, name))
        if found is not None:
            return found
        known = sorted(n for k, n in self._components if k == kind)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        other = [k for k, n in self._components if n == name]
        if other:
            hint += f" ({name!r} is registered as a {other[0]}, not a {kind}.)"
        broken = [p for p in self._plugins.values() if p.error]
        if broken:
            hint += " Plugins that failed to load: " + ", ".join(
                f"{p.name} ({p.error})" for p in broken
            )
        raise UnknownComponentError(
            f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(known) or 'none'}. "
            "Run `fastdistill plugins` to see what is installed."
        )

    def step(self, name: str) -> Any:
        """The step class registered as ``name``."""
        return self.get("step", name).obj

    def model(self, name: str) -> Any:
        """The model class registered as ``name``."""
        return self.get("model", name).obj

    def engine(self, name: str) -> Any:
        """The engine class registered as ``name``."""
        return self.get("engine", name).obj

    def transport(self, name: str) -> Any:
        """The transport class registered as ``name``."""
        return self.get("transport", name).obj

    def placement(self, name: str) -> Any:
        """The placement strategy class registered as ``name``."""
        return self.get("placement", name).obj

    def components(self, kind: str | None = None) -> list[ComponentInfo]:
        """All components, or those of one ``kind``, sorted by kind and name."""
        return sorted(
            (c for c in self._components.values() if kind is None or c.kind == kind),
            key=lambda c: (c.kind, c.name),
        )

    def name_of(self, obj: Any) -> ComponentInfo | None:
        """The registration of a class (or of an instance's class), if it is registered."""
        cls = obj if isinstance(obj, type) else type(obj)
        for comp in self._components.values():
            if comp.obj is cls:
                return comp
        return None

    def plugins(self) -> list[PluginInfo]:
        """Every discovered plugin, loaded or broken, core first."""
        return sorted(self._plugins.values(), key=lambda p: (p.name != CORE_PLUGIN, p.name))

    def load_errors(self) -> list[PluginInfo]:
        """Plugins that failed to load, each with its distribution and error."""
        return [p for p in self.plugins() if p.error]

    def migrations(self) -> list[ComponentInfo]:
        """Registered migrations, ordered by ``from_version`` then name."""
        return sorted(
            self.components("migration"), key=lambda c: (c.meta.get("from_version", 0), c.name)
        )

    def iter_kind(self, kind: str) -> Iterable[tuple[str, Any]]:
        """``(name, object)`` pairs of one kind."""
        return ((c.name, c.obj) for c in self.components(kind))

    def call_hook(self, hook_name: str, register: Callable[..., Any]) -> None:
        """Call one ``register_*`` hook on every plugin with a custom ``register`` (advanced)."""
        getattr(self._pm.hook, hook_name)(register=register)
