"""Discovering every installed plugin imports no component module (benchmark P4).

The plugins register their components lazily (``"module:Class"`` targets) and their packages'
``__init__`` re-export nothing, so ``fastdistill.Registry()`` builds no pydantic component class,
imports no client library, and does not need :mod:`importlib.metadata`.
"""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json, sys
import fastdistill
registry = fastdistill.Registry()
comps = registry.components()
print(json.dumps({
    "modules": sorted(sys.modules),
    "components": [[c.kind, c.name, c.plugin, c.target, c.loaded] for c in comps],
    "errors": [p.name for p in registry.load_errors()],
    "deferred": [
        cls.__name__ for cls in (fastdistill.Step, fastdistill.GeneratorStep, fastdistill.Task,
                                 fastdistill.LLM)
        if not cls.__pydantic_complete__
    ],
}))
"""

#: imported by component modules (or by what discovery must not need), never by discovery
FORBIDDEN = (
    "fastdistill_steps.loaders",
    "fastdistill_steps.canonical",
    "fastdistill_steps.sql",
    "fastdistill_llms.openai_compat",
    "fastdistill_llms.embedded",
    "fastdistill_llms.anthropic_llm",
    "fastdistill_llms.text_generation",
    "fastdistill_llms.structured",
    "fastdistill_cuda.placement",
    "fastdistill_cuda.inventory",
    "fastdistill.engine",
    "fastdistill.builtins.steps",
    "importlib.metadata",
    "asyncio",
    "httpx",
    "aiohttp",
)


def _discover() -> dict:
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", SCRIPT],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_discovering_every_plugin_imports_no_component_module() -> None:
    report = _discover()
    assert report["errors"] == []
    plugins = {plugin for _, _, plugin, _, _ in report["components"]}
    assert {"core", "steps", "llms", "cuda"} <= plugins
    loaded = [m for m in report["modules"] if m.startswith(FORBIDDEN)]
    assert loaded == [], f"discovery imported {loaded}"
    for kind, name, plugin, target, was_loaded in report["components"]:
        if plugin in ("steps", "llms", "cuda"):
            assert target, f"{kind} {name!r} of plugin {plugin!r} is registered eagerly"
            assert not was_loaded, f"{kind} {name!r} was imported by discovery"


def test_base_classes_build_their_validators_on_first_use() -> None:
    """``defer_build``: no pydantic validator is built by ``import fastdistill``."""
    assert _discover()["deferred"] == ["Step", "GeneratorStep", "Task", "LLM"]
