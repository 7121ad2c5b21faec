"""Registration through the real entry point, and cheap plugin import."""

from __future__ import annotations

import subprocess
import sys

import fastdistill
import pytest
from fastdistill import GeneratorStep, GlobalStep, Step

EXPECTED = {
    "load_jsonl": GeneratorStep,
    "load_parquet": GeneratorStep,
    "canonicalize": Step,
    "compute_hash": Step,
    "dedup_exact": Step,
    "sqlite_schema": Step,
    "extract_sql": Step,
    "rule_filter": Step,
    "sqlite_exec_eval": Step,
    "score_exec": Step,
    "quality_gate": Step,
    "export_jsonl": GlobalStep,
    "export_chat": GlobalStep,
}


@pytest.fixture
def registry() -> fastdistill.Registry:
    return fastdistill.Registry(env={})


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_step_registered_by_distribution(registry: fastdistill.Registry, name: str) -> None:
    info = registry.get("step", name)
    assert info.distribution == "fastdistill-steps"
    assert info.plugin == "steps"
    assert info.version == "0.1.0"
    assert issubclass(info.obj, EXPECTED[name])
    assert info.obj.__doc__


def test_plugin_loads_without_errors(registry: fastdistill.Registry) -> None:
    plugin = next(p for p in registry.plugins() if p.name == "steps")
    assert plugin.error is None
    assert plugin.hooks == ["register_steps"]
    assert {c.name for c in plugin.components} == set(EXPECTED)


def test_gates_are_marked(registry: fastdistill.Registry) -> None:
    gates = {name for name in EXPECTED if registry.step(name).is_gate}
    assert gates == {"rule_filter", "sqlite_exec_eval", "quality_gate"}


def test_block_list_hides_the_plugin() -> None:
    reg = fastdistill.Registry(env={"FASTDISTILL_BLOCK_PLUGINS": "fastdistill-steps"})
    with pytest.raises(fastdistill.UnknownComponentError):
        reg.step("load_jsonl")


def test_plugin_import_and_discovery_are_cheap() -> None:
    code = (
        "import sys, fastdistill, fastdistill_steps.plugin\n"
        "fastdistill.Registry().step('load_parquet')\n"
        "heavy = [m for m in ('pyarrow', 'pandas', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
