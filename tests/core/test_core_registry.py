"""The registry: discovery through real entry points, conflicts, broken plugins, user controls."""

from __future__ import annotations

import textwrap
from importlib import metadata
from typing import Any

import pytest
from fastdistill import (
    LLM,
    Generation,
    PluginError,
    Registry,
    Step,
    UnknownComponentError,
    hookimpl,
)
from fastdistill.builtins.steps import KeepColumns, LoadFromDicts
from fastdistill.engine.local import LocalEngine
from fastdistill.placement import CpuPlacement
from fastdistill.transport import FilesystemTransport, MemoryTransport

UPPER_PLUGIN = """
    from fastdistill import Step, hookimpl

    class Upper(Step):
        inputs = ("text",)
        outputs = ("text",)

        def process(self, rows, ctx):
            return [{**r, "text": r["text"].upper()} for r in rows]

    @hookimpl
    def register_steps(register):
        register(Upper, name="upper")
"""

LOWER_PLUGIN = """
    from fastdistill import Step, hookimpl

    class Lower(Step):
        inputs = ("text",)
        outputs = ("text",)

        def process(self, rows, ctx):
            return [{**r, "text": r["text"].lower()} for r in rows]

    @hookimpl
    def register_steps(register):
        register(Lower, name="lower")
"""

BROKEN_PLUGIN = """
    raise ImportError("No module named 'heavy_dep_xyz'")
"""

TYPO_PLUGIN = """
    from fastdistill import Step, hookimpl

    class Typo(Step):
        def process(self, rows, ctx):
            return rows

    @hookimpl
    def register_step(register):  # misspelled: the hook is register_steps
        register(Typo, name="typo_step")

    @hookimpl
    def register_transports(register):
        from fastdistill.transport import MemoryTransport

        class Other(MemoryTransport):
            pass

        register(Other, name="typo_transport")
"""


def only(*names: str) -> dict[str, str]:
    """An env that loads only the named plugins (core is always loaded)."""
    return {"FASTDISTILL_LOAD_PLUGINS": ",".join(names)}


# ------------------------------------------------------------------ discovery
def test_entry_point_plugin_is_discovered_with_distribution_and_version(fake_dists: Any) -> None:
    module = fake_dists.add("fd-good", UPPER_PLUGIN, version="1.2.3", ep_name="good")

    registry = Registry(env=only("fd-good"))

    info = registry.get("step", "upper")
    assert info.distribution == "fd-good"
    assert info.version == "1.2.3"
    assert info.plugin == "good"
    assert info.kind == "step"
    assert info.obj.__module__ == module
    plugin = next(p for p in registry.plugins() if p.name == "good")
    assert plugin.hooks == ["register_steps"]
    assert plugin.error is None
    assert plugin.location is not None and plugin.location.endswith(f"{module}.py")
    assert [c.name for c in plugin.components] == ["upper"]
    # the registered class is the real thing
    from fastdistill.testing import run_step

    kept, rejected = run_step(registry.step("upper")(), [{"text": "abc"}])
    assert kept == [{"text": "ABC"}] and rejected == []


def test_plugin_summary_is_json_ready(fake_dists: Any) -> None:
    fake_dists.add("fd-good", UPPER_PLUGIN, version="0.3.0", ep_name="good")
    registry = Registry(env=only("good"))
    summary = next(p for p in registry.plugins() if p.name == "good").to_dict()
    assert summary["distribution"] == "fd-good"
    assert summary["version"] == "0.3.0"
    assert summary["hooks"] == ["register_steps"]
    assert summary["components"] == [
        {"name": "upper", "kind": "step", "object": summary["components"][0]["object"]}
    ]
    assert summary["components"][0]["object"].endswith(":Upper")
    assert summary["error"] is None


def test_core_plugin_is_listed_first(fake_dists: Any) -> None:
    fake_dists.add("aaa-first", LOWER_PLUGIN, ep_name="aaa")
    names = [p.name for p in Registry(env=only("aaa")).plugins()]
    assert names == ["core", "aaa"]


# ------------------------------------------------------------------ conflicts
def test_same_step_name_from_two_distributions_names_both(fake_dists: Any) -> None:
    fake_dists.add("fd-alpha", UPPER_PLUGIN, ep_name="alpha")
    fake_dists.add("fd-beta", UPPER_PLUGIN, ep_name="beta")

    registry = Registry(env=only("alpha", "beta"))  # the rest of the registry still works
    assert registry.get("engine", "local")
    with pytest.raises(PluginError) as err:
        registry.get("step", "upper")  # only using the ambiguous name fails

    message = str(err.value)
    assert "'upper'" in message
    assert "fd-alpha" in message and "fd-beta" in message
    assert "FASTDISTILL_PREFER" in message  # the error says how to settle it
    warned = {p.distribution for p in registry.plugins() if any("upper" in w for w in p.warnings)}
    assert warned == {"fd-alpha", "fd-beta"}
    chosen = Registry(env={**only("alpha", "beta"), "FASTDISTILL_PREFER": "upper=fd-beta"})
    assert chosen.get("step", "upper").distribution == "fd-beta"


@pytest.mark.parametrize("winner", ["fd-alpha", "fd-beta"])
def test_prefer_settles_a_conflict(fake_dists: Any, winner: str) -> None:
    mod_alpha = fake_dists.add("fd-alpha", UPPER_PLUGIN, ep_name="alpha")
    mod_beta = fake_dists.add("fd-beta", UPPER_PLUGIN, ep_name="beta")

    registry = Registry(env=only("alpha", "beta"), prefer={"upper": winner})

    info = registry.get("step", "upper")
    assert info.distribution == winner
    assert info.obj.__module__ == (mod_alpha if winner == "fd-alpha" else mod_beta)
    assert len([c for c in registry.components("step") if c.name == "upper"]) == 1


def test_plugin_cannot_silently_replace_a_core_component(core_registry: Registry) -> None:
    class Shadow:
        @hookimpl
        def register_transports(self, register: Any) -> None:
            register(MemoryTransport, name="memory")

    with pytest.raises(PluginError) as err:
        core_registry.add_plugin(Shadow(), name="shadow", distribution="fd-shadow")
    assert "fastdistill-core" in str(err.value) and "fd-shadow" in str(err.value)
    # core's component is untouched
    assert core_registry.get("transport", "memory").plugin == "core"


# ------------------------------------------------------------------ broken plugins
def test_broken_plugin_is_reported_and_others_still_load(fake_dists: Any) -> None:
    fake_dists.add("fd-broken", BROKEN_PLUGIN, version="0.0.1", ep_name="broken")
    fake_dists.add("fd-good", UPPER_PLUGIN, ep_name="good")

    registry = Registry(env=only("broken", "good"))

    errors = registry.load_errors()
    assert [e.name for e in errors] == ["broken"]
    assert errors[0].distribution == "fd-broken"
    assert errors[0].version == "0.0.1"
    assert errors[0].error is not None
    assert "ImportError" in errors[0].error and "heavy_dep_xyz" in errors[0].error
    assert errors[0].traceback is not None and "heavy_dep_xyz" in errors[0].traceback
    assert registry.get("step", "upper").distribution == "fd-good"
    # an unknown name points at the broken plugin as a likely cause
    with pytest.raises(UnknownComponentError, match="broken"):
        registry.step("what_broken_provides")


def test_strict_mode_raises_on_a_broken_plugin(fake_dists: Any) -> None:
    fake_dists.add("fd-broken", BROKEN_PLUGIN, ep_name="broken")
    with pytest.raises(PluginError, match="fd-broken") as err:
        Registry(env=only("broken"), strict=True)
    assert "heavy_dep_xyz" in str(err.value)
    with pytest.raises(PluginError, match="fd-broken"):
        Registry(env={**only("broken"), "FASTDISTILL_STRICT_PLUGINS": "1"})


def test_misspelled_hook_marks_the_plugin_broken(fake_dists: Any) -> None:
    # "aaa" sorts first: the plugins loaded after it must not be affected
    fake_dists.add("fd-typo", TYPO_PLUGIN, ep_name="aaa")
    fake_dists.add("fd-good", UPPER_PLUGIN, ep_name="good")

    registry = Registry(env=only("aaa", "good"))

    errors = registry.load_errors()
    assert [(e.name, e.distribution) for e in errors] == [("aaa", "fd-typo")]
    assert errors[0].error is not None and "register_step" in errors[0].error
    # nothing of the broken plugin is registered, not even its correctly spelled hook
    names = {c.name for c in registry.components()}
    assert "typo_step" not in names and "typo_transport" not in names
    assert registry.get("step", "upper").distribution == "fd-good"

    with pytest.raises(PluginError, match="register_step"):
        Registry(env=only("aaa"), strict=True)


def test_registering_none_or_a_bad_name_breaks_only_that_plugin(core_registry: Registry) -> None:
    class RegistersNone:
        @hookimpl
        def register_steps(self, register: Any) -> None:
            register(KeepColumns, name="fine_before_failure")
            register(None)

    class BadName:
        @hookimpl
        def register_steps(self, register: Any) -> None:
            register(KeepColumns, name="has space")

    a = core_registry.add_plugin(RegistersNone(), name="none")
    b = core_registry.add_plugin(BadName(), name="bad")
    assert a.error is not None and "None" in a.error
    assert b.error is not None and "has space" in b.error
    # a failing plugin leaves nothing half-registered
    assert a.components == []
    with pytest.raises(UnknownComponentError):
        core_registry.step("fine_before_failure")
    assert {p.name for p in core_registry.load_errors()} == {"none", "bad"}


def test_plugin_name_must_be_unique(core_registry: Registry) -> None:
    class P:
        pass

    core_registry.add_plugin(P(), name="p")
    with pytest.raises(PluginError, match="'p'"):
        core_registry.add_plugin(P(), name="p")


# ------------------------------------------------------------------ isolation
def test_two_registries_do_not_share_plugins() -> None:
    class Local:
        calls = 0

        @hookimpl
        def register_steps(self, register: Any) -> None:
            Local.calls += 1
            register(KeepColumns, name="only_in_one")

    one = Registry(env=only())
    two = Registry(env=only())
    one.add_plugin(Local(), name="local")

    assert one.step("only_in_one") is KeepColumns
    with pytest.raises(UnknownComponentError):
        two.step("only_in_one")
    assert "local" not in {p.name for p in two.plugins()}
    assert Local.calls == 1
    # a third registry built afterwards is not polluted either
    with pytest.raises(UnknownComponentError):
        Registry(env=only()).step("only_in_one")


def test_every_hook_kind_registers_a_usable_component(core_registry: Registry) -> None:
    class Echo(LLM):
        async def agenerate(self, messages: Any, **overrides: Any) -> Generation:
            return Generation(text=messages[-1]["content"])

    class Noop(Step):
        def process(self, rows: Any, ctx: Any) -> Any:
            return rows

    class Spool(FilesystemTransport):
        pass

    class Cpu2(CpuPlacement):
        pass

    class Engine2(LocalEngine):
        pass

    def bump(doc: dict[str, Any]) -> dict[str, Any]:
        return doc

    class Everything:
        @hookimpl
        def register_steps(self, register: Any) -> None:
            register(Noop)

        @hookimpl
        def register_models(self, register: Any) -> None:
            register(Echo, name="echo")

        @hookimpl
        def register_transports(self, register: Any) -> None:
            register(Spool, name="spool")

        @hookimpl
        def register_placements(self, register: Any) -> None:
            register(Cpu2, name="cpu2")

        @hookimpl
        def register_engines(self, register: Any) -> None:
            register(Engine2, name="engine2")

        @hookimpl
        def register_migrations(self, register: Any) -> None:
            register(bump, name="every.bump", from_version=1)

    info = core_registry.add_plugin(
        Everything(), name="every", distribution="fd-every", version="9"
    )
    assert info.error is None
    assert sorted(info.hooks) == sorted(
        [
            "register_steps",
            "register_models",
            "register_transports",
            "register_placements",
            "register_engines",
            "register_migrations",
        ]
    )
    assert core_registry.step("noop") is Noop  # default name: snake_case class name
    assert core_registry.model("echo") is Echo
    assert core_registry.transport("spool") is Spool
    assert core_registry.placement("cpu2") is Cpu2
    assert core_registry.engine("engine2") is Engine2
    migration = next(m for m in core_registry.migrations() if m.name == "every.bump")
    assert migration.meta == {"from_version": 1} and migration.distribution == "fd-every"
    assert core_registry.name_of(Noop()) == core_registry.get("step", "noop")


# ------------------------------------------------------------------ user controls
def test_block_plugins_by_distribution_or_entry_point_name(fake_dists: Any) -> None:
    fake_dists.add("fd-upper", UPPER_PLUGIN, ep_name="upper_ep")
    fake_dists.add("fd-lower", LOWER_PLUGIN, ep_name="lower_ep")
    base = only("upper_ep", "lower_ep")

    both = Registry(env=base)
    assert {"upper", "lower"} <= {c.name for c in both.components("step")}

    by_dist = Registry(env={**base, "FASTDISTILL_BLOCK_PLUGINS": "fd-upper"})
    assert "upper_ep" not in {p.name for p in by_dist.plugins()}
    assert by_dist.step("lower").__name__ == "Lower"
    with pytest.raises(UnknownComponentError):
        by_dist.step("upper")

    by_ep = Registry(env={**base, "FASTDISTILL_BLOCK_PLUGINS": " lower_ep , other"})
    assert by_ep.step("upper").__name__ == "Upper"
    with pytest.raises(UnknownComponentError):
        by_ep.step("lower")


def test_load_plugins_selects_plugins_and_always_keeps_core(fake_dists: Any) -> None:
    fake_dists.add("fd-upper", UPPER_PLUGIN, ep_name="upper_ep")
    fake_dists.add("fd-lower", LOWER_PLUGIN, ep_name="lower_ep")

    by_dist = Registry(env={"FASTDISTILL_LOAD_PLUGINS": "fd-lower"})
    assert [p.name for p in by_dist.plugins()] == ["core", "lower_ep"]

    none = Registry(env={"FASTDISTILL_LOAD_PLUGINS": ""})
    assert [p.name for p in none.plugins()] == ["core"]
    assert none.step("keep_columns") is KeepColumns

    everything = Registry(env={})
    names = {p.name for p in everything.plugins()}
    assert {"core", "upper_ep", "lower_ep"} <= names


def test_trace_switch_writes_hook_calls_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    Registry(env={"FASTDISTILL_LOAD_PLUGINS": "", "FASTDISTILL_TRACE_PLUGINS": "1"})
    assert "register_steps" in capsys.readouterr().err
    Registry(env={"FASTDISTILL_LOAD_PLUGINS": ""})
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ lookups
def test_unknown_component_lists_close_names(core_registry: Registry) -> None:
    with pytest.raises(UnknownComponentError) as err:
        core_registry.step("keep_colums")
    message = str(err.value)
    assert "'keep_colums'" in message
    assert "Did you mean 'keep_columns'" in message
    assert "fastdistill plugins" in message


def test_unknown_component_of_another_kind_says_which_kind(core_registry: Registry) -> None:
    with pytest.raises(UnknownComponentError, match="registered as a transport"):
        core_registry.step("memory")
    with pytest.raises(KeyError):  # also a KeyError, for dict-like callers
        core_registry.engine("ray")


# ------------------------------------------------------------------ built-ins
def test_core_builtins_come_through_cores_entry_point() -> None:
    registry = Registry(env={"FASTDISTILL_LOAD_PLUGINS": ""})
    core = registry.plugins()[0]
    assert core.name == "core"
    assert core.distribution == "fastdistill-core"
    assert core.version == metadata.version("fastdistill-core")
    assert core.location is not None and core.location.replace("\\", "/").endswith(
        "fastdistill/builtins/__init__.py"
    )
    expected = {
        ("transport", "memory"): MemoryTransport,
        ("transport", "filesystem"): FilesystemTransport,
        ("placement", "cpu"): CpuPlacement,
        ("engine", "local"): LocalEngine,
        ("step", "load_from_dicts"): LoadFromDicts,
        ("step", "keep_columns"): KeepColumns,
    }
    for (kind, name), obj in expected.items():
        info = registry.get(kind, name)
        assert info.obj is obj
        assert (info.plugin, info.distribution) == ("core", "fastdistill-core")
    # nothing is wired in by special case: without discovery there are no built-ins
    bare = Registry(discover=False)
    assert bare.components() == [] and bare.plugins() == []
    with pytest.raises(UnknownComponentError):
        bare.engine("local")


# ------------------------------------------------------------------ lazy registration
LAZY_TARGET = """
    from fastdistill import Step

    class Shout(Step):
        inputs = ("text",)
        outputs = ("text",)

        def process(self, rows, ctx):
            return [{**r, "text": r["text"].upper() + "!"} for r in rows]
"""

LAZY_PLUGIN = """
    from fastdistill import hookimpl

    def _load():
        from {target} import Shout

        return Shout

    @hookimpl
    def register_steps(register):
        register("{target}:Shout", name="shout")
        register(name="shout_loader", loader=_load)
"""


def _lazy_plugin(fake_dists: Any, dist: str = "fd-lazy", target_source: str = LAZY_TARGET) -> str:
    """A plugin registering ``shout`` lazily from a separate module; returns that module name."""
    target = f"fdtest_lazytarget_{dist.replace('-', '_')}"
    (fake_dists.site / f"{target}.py").write_text(textwrap.dedent(target_source), encoding="utf-8")
    fake_dists.modules.append(target)
    fake_dists.add(dist, LAZY_PLUGIN.replace("{target}", target), ep_name="lazy")
    return target


def test_lazy_components_are_imported_on_first_use_only(fake_dists: Any) -> None:
    import sys

    target = _lazy_plugin(fake_dists)
    registry = Registry(env=only("lazy"))
    info = registry.get("step", "shout")
    assert target not in sys.modules  # discovery imported nothing of the component
    assert info.lazy and not info.loaded
    assert (info.plugin, info.distribution, info.kind) == ("lazy", "fd-lazy", "step")
    assert info.qualname == f"{target}:Shout"  # listing shows the target, nothing imported
    summary = next(p for p in registry.plugins() if p.name == "lazy").to_dict()
    assert {c["name"]: c["object"] for c in summary["components"]}["shout"] == f"{target}:Shout"
    assert target not in sys.modules

    cls = registry.step("shout")
    assert cls.__name__ == "Shout" and cls.__module__ == target and info.loaded
    assert registry.step("shout") is cls  # loaded once, kept
    assert registry.step("shout_loader") is cls  # the loader callable form
    loader_info = registry.get("step", "shout_loader")
    assert loader_info.qualname.endswith(":_load()")
    from fastdistill.testing import run_step

    kept, _ = run_step(cls(), [{"text": "hi"}])
    assert kept == [{"text": "HI!"}]
    # an instance maps back to its registration (the first one registered for the class)
    assert registry.name_of(cls()) is info


def test_name_of_finds_a_lazy_component_imported_by_the_user(fake_dists: Any) -> None:
    target = _lazy_plugin(fake_dists)
    registry = Registry(env=only("lazy"))
    module = __import__(target)  # the user imported the class directly
    assert registry.name_of(module.Shout()) == registry.get("step", "shout")
    assert registry.name_of(LoadFromDicts) is registry.get("step", "load_from_dicts")
    assert registry.name_of(int) is None


def test_lazy_target_that_fails_is_reported_when_used_naming_the_distribution(
    fake_dists: Any,
) -> None:
    _lazy_plugin(fake_dists, target_source="raise ImportError(\"No module named 'heavy_xyz'\")\n")
    registry = Registry(env=only("lazy"))
    assert registry.load_errors() == []  # discovery is fine: nothing was imported
    with pytest.raises(PluginError) as err:
        registry.step("shout")
    message = str(err.value)
    assert "'shout'" in message and "fd-lazy" in message and "'lazy'" in message
    assert "heavy_xyz" in message and ":Shout" in message
    assert isinstance(err.value.__cause__, ImportError)
    with pytest.raises(PluginError, match="heavy_xyz"):  # not cached as a success
        registry.step("shout_loader")


def test_lazy_target_missing_attribute_is_a_clear_error(fake_dists: Any) -> None:
    _lazy_plugin(fake_dists, target_source="X = 1\n")
    registry = Registry(env=only("lazy"))
    with pytest.raises(PluginError, match=r"AttributeError.*Shout"):
        registry.step("shout")


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        ("register('pkg.mod:Cls')", "needs name="),
        ("register(name='x', loader=1)", "zero-argument callable"),
        ("register('not a target', name='x')", "package.module:QualName"),
        ("register('pkg/mod:Cls', name='x')", "package.module:QualName"),
        ("register(object, name='x', loader=lambda: object)", "not both"),
    ],
)
def test_bad_lazy_registrations_break_only_that_plugin(
    core_registry: Registry, call: str, fragment: str
) -> None:
    namespace: dict[str, Any] = {}
    exec(  # noqa: S102 - a tiny plugin built from the parameter
        f"def register_steps(register):\n    {call}\n", {}, namespace
    )
    plugin = type("P", (), {"register_steps": staticmethod(hookimpl(namespace["register_steps"]))})
    info = core_registry.add_plugin(plugin(), name="bad_lazy")
    assert info.error is not None and fragment in info.error
    assert core_registry.get("step", "load_from_dicts")  # the others still work


def test_lazy_name_conflicting_with_another_distribution_names_both(fake_dists: Any) -> None:
    _lazy_plugin(fake_dists, dist="fd-lazy")
    fake_dists.add(
        "fd-eager",
        UPPER_PLUGIN.replace('name="upper"', 'name="shout"'),
        ep_name="eager",
    )
    with pytest.raises(PluginError) as err:
        Registry(env=only("lazy", "eager")).get("step", "shout")
    assert "fd-lazy" in str(err.value) and "fd-eager" in str(err.value)
    chosen = Registry(env=only("lazy", "eager"), prefer={"shout": "fd-lazy"})
    assert chosen.get("step", "shout").distribution == "fd-lazy"


def test_discovery_imports_no_component_module_of_core() -> None:
    import subprocess
    import sys

    code = (
        "import sys, fastdistill\n"
        "r = fastdistill.Registry()\n"
        "assert r.get('engine', 'local').lazy\n"
        "heavy = ('fastdistill.engine.local', 'fastdistill.builtins.steps')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout
