"""The component registry: a fresh pluggy ``PluginManager`` per :class:`Registry` instance.

Plugins are discovered through entry points in the group ``fastdistill`` (read by
:mod:`fastdistill.entrypoints`, as :mod:`importlib.metadata` reads them, without importing it).
Core registers its own built-ins through its own entry point and the same hooks as any
third-party plugin.

A plugin may register a component lazily: ``register("package.module:Class", name=...)`` or
``register(name=..., loader=zero_arg_callable)``.  Discovery then imports nothing of the
component; :attr:`ComponentInfo.obj` imports (or calls the loader) on first use, and a target
that fails is a :class:`~fastdistill.errors.PluginError` naming the component, the plugin and
its distribution.  Such strings come only from a plugin's own code, never from a document.

User controls (read from the ``env`` mapping given to :class:`Registry`, ``os.environ`` by
default):

``FASTDISTILL_LOAD_PLUGINS``
    comma-separated entry-point or distribution names: load only these (core is always loaded).
    An empty value loads no external plugin.
``FASTDISTILL_BLOCK_PLUGINS``
    comma-separated entry-point or distribution names never to load.
``FASTDISTILL_STRICT_PLUGINS``
    ``1`` turns a broken plugin into an exception instead of a reported load error.
``FASTDISTILL_PREFER``
    ``name=distribution,...``: which distribution's component wins a name two plugins register
    (without it, the name is an error when a pipeline uses it; everything else works).
``FASTDISTILL_TRACE_PLUGINS``
    ``1`` traces every hook call to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

import pluggy

from fastdistill import hookspecs
from fastdistill.components import (  # re-exported: part of the registry's public API
    ComponentInfo,
    PluginInfo,
    Registrar,
    _path_of,
    default_component_name,  # noqa: F401 (re-exported)
)
from fastdistill.entrypoints import entry_points
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
        self._prefer = {
            k.strip(): v.strip()
            for k, _, v in (
                item.partition("=")
                for item in self._env.get("FASTDISTILL_PREFER", "").split(",")
                if "=" in item
            )
        }
        self._prefer.update(prefer or {})
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        if self._env.get("FASTDISTILL_TRACE_PLUGINS") == "1":
            self._pm.trace.root.setwriter(sys.stderr.write)
            self._pm.enable_tracing()
        self._components: dict[tuple[str, str], ComponentInfo] = {}
        #: names two plugins register (and no preference settles): an error when used
        self._ambiguous: dict[tuple[str, str], list[ComponentInfo]] = {}
        self._plugins: dict[str, PluginInfo] = {}
        if discover:
            self._discover()

    # ----------------------------------------------------------------- discovery
    def _discover(self) -> None:
        only = _split(self._env.get("FASTDISTILL_LOAD_PLUGINS"))
        blocked = _split(self._env.get("FASTDISTILL_BLOCK_PLUGINS")) or set()
        eps = sorted(
            entry_points(ENTRY_POINT_GROUP),
            key=lambda ep: (ep.name != CORE_PLUGIN, ep.name),
        )
        for ep in eps:
            dist_name = ep.dist_name
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
                version=ep.dist_version,
            )
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                self._record_error(info, exc)
                continue
            info.location = getattr(module, "__file__", None)
            self.add_plugin(module, info=info, discovering=True)

    def _record_error(self, info: PluginInfo, exc: BaseException) -> None:
        info.error = f"{type(exc).__name__}: {exc}"
        import traceback

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
        discovering: bool = False,
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
            if isinstance(exc, PluginError) and "registered by both" in str(exc) and not discovering:
                raise
            self._record_error(info, exc)
        return info

    def _add_component(self, info: ComponentInfo) -> None:
        key = (info.kind, info.name)
        existing = self._components.get(key) or self._ambiguous.get(key, [None])[0]
        if existing is None:
            self._components[key] = info
            return
        chosen = self._prefer.get(info.name)
        if chosen in (existing.distribution, existing.plugin):
            return
        if chosen in (info.distribution, info.plugin):
            self._components[key] = info
            self._ambiguous.pop(key, None)
            return
        message = (
            f"{info.kind} {info.name!r} is registered by both "
            f"{existing.distribution or existing.plugin!r} (plugin {existing.plugin!r}) and "
            f"{info.distribution or info.plugin!r} (plugin {info.plugin!r}); uninstall one, "
            f"block one with FASTDISTILL_BLOCK_PLUGINS, or pick one with "
            f"FASTDISTILL_PREFER={info.name}=<distribution> "
            f"(Python: Registry(prefer={{{info.name!r}: <distribution>}}))"
        )
        if existing.plugin == CORE_PLUGIN:
            raise PluginError(message + "; core's component cannot be replaced")
        # two plugins: the name is ambiguous, an error only for pipelines that use it
        self._components.pop(key, None)
        self._ambiguous.setdefault(key, [existing]).append(info)
        for plugin_name in (existing.plugin, info.plugin):
            plugin = self._plugins.get(plugin_name)
            if plugin is not None and message not in plugin.warnings:
                plugin.warnings.append(message)

    # ----------------------------------------------------------------- queries
    def get(self, kind: str, name: str) -> ComponentInfo:
        """The component of ``kind`` named ``name``; an unknown name lists close names, and a
        name two plugins register is an error naming both."""
        found = self._components.get((kind, name))
        if found is not None:
            return found
        if (kind, name) in self._ambiguous:
            rivals = self._ambiguous[(kind, name)]
            dists = " and ".join(repr(c.distribution or c.plugin) for c in rivals)
            raise PluginError(
                f"{kind} {name!r} is registered by both {dists}; uninstall one, block one with "
                f"FASTDISTILL_BLOCK_PLUGINS, or pick one with FASTDISTILL_PREFER={name}=<distribution>"
                f" (Python: Registry(prefer={{{name!r}: <distribution>}}))"
            )
        known = sorted(n for k, n in self._components if k == kind)
        import difflib

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
        """The registration of a class (or of an instance's class), if it is registered.

        Lazy components are compared without importing anything new: by target string, or by
        loading those whose module is already imported (the class's module is).
        """
        cls = obj if isinstance(obj, type) else type(obj)
        path = _path_of(cls)
        pending: list[ComponentInfo] = []
        for comp in self._components.values():
            if comp.loaded:
                if comp.obj is cls:
                    return comp
            elif comp.target == path:
                if self._loads_as(comp, cls):
                    return comp
            else:
                pending.append(comp)
        for comp in pending:  # re-exported targets ("pkg:Cls") and loader callables
            if isinstance(comp.source, str) and comp.source.partition(":")[0] not in sys.modules:
                continue  # cls cannot come from a module that was never imported
            if self._loads_as(comp, cls):
                return comp
        return None

    @staticmethod
    def _loads_as(comp: ComponentInfo, cls: type) -> bool:
        try:
            return comp.obj is cls
        except PluginError:
            return False

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
        """``(name, object)`` pairs of one kind (lazy components are loaded as iterated)."""
        return ((c.name, c.obj) for c in self.components(kind))

    def call_hook(self, hook_name: str, register: Callable[..., Any]) -> None:
        """Call one ``register_*`` hook on every plugin with a custom ``register`` (advanced)."""
        getattr(self._pm.hook, hook_name)(register=register)
