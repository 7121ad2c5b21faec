"""Registration through the entry point, and a cheap plugin import."""

from __future__ import annotations

import subprocess
import sys

from fastdistill import Registry
from fastdistill_llms.anthropic_llm import AnthropicLLM
from fastdistill_llms.chat_generation import ChatGeneration
from fastdistill_llms.embedded import EmbeddedLLM
from fastdistill_llms.judge import LLMJudge
from fastdistill_llms.openai_compat import OpenAICompatLLM
from fastdistill_llms.synthetic import EvolInstruct, SelfInstruct
from fastdistill_llms.text_generation import TextGeneration
from fastdistill_llms.transformers_llm import TransformersLLM

MODELS = {
    "openai_compat": OpenAICompatLLM,
    "embedded": EmbeddedLLM,
    "anthropic": AnthropicLLM,
    "transformers": TransformersLLM,
}
STEPS = {
    "text_generation": TextGeneration,
    "chat_generation": ChatGeneration,
    "llm_judge": LLMJudge,
    "self_instruct": SelfInstruct,
    "evol_instruct": EvolInstruct,
}


def test_components_are_registered_by_the_distribution():
    reg = Registry()
    ours = {c.name: c for c in reg.components() if c.distribution == "fastdistill-llms"}
    assert set(ours) == set(MODELS) | set(STEPS)
    for name, cls in MODELS.items():
        assert ours[name].kind == "model" and ours[name].obj is cls
        assert reg.model(name) is cls
    for name, cls in STEPS.items():
        assert ours[name].kind == "step" and ours[name].obj is cls
    assert all(c.version == "0.1.0" and c.plugin == "llms" for c in ours.values())


def test_plugin_import_and_registration_do_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "import fastdistill_llms.plugin as p\n"
        "got = []\n"
        "p.register_models(lambda obj, name=None, **m: got.append(name))\n"
        "p.register_steps(lambda obj, name=None, **m: got.append(name))\n"
        f"assert sorted(got) == {sorted(set(MODELS) | set(STEPS))!r}, got\n"
        "heavy = ('aiohttp', 'httpx', 'xllamacpp', 'anthropic', 'torch', 'transformers', 'gguf')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_every_component_has_a_docstring_and_a_readme_entry():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "fastdistill-llms" / "README.md").read_text()
    for name, cls in {**MODELS, **STEPS}.items():
        assert cls.__doc__ and cls.__doc__.strip(), name
        assert f"`{name}`" in readme, f"{name} is not documented in fastdistill-llms/README.md"


def test_the_root_readme_examples_build_real_components():
    """The "Models and tasks" section of README.md cannot drift from the components."""
    import re
    from pathlib import Path

    import yaml
    from fastdistill.testing import ScriptedLLM

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("## Models and tasks", 1)[1].split("\n## ", 1)[0]
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.S)]
    models, tasks = blocks
    reg = Registry()
    built = [reg.model(spec["component"])(**spec.get("params", {})) for spec in models]
    assert {type(m) for m in built} == set(MODELS.values())
    for spec in tasks:
        params = {**spec["params"], "llm": ScriptedLLM()}
        step = reg.step(spec["component"])(name=spec["name"], **params)
        assert step.output_columns()
    assert {spec["component"] for spec in tasks} == set(STEPS)
