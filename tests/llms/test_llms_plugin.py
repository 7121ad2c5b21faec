"""Registration through the entry point, and a cheap plugin import."""

from __future__ import annotations

import subprocess
import sys

from fastdistill import Registry
from fastdistill_llms.embedded import EmbeddedLLM
from fastdistill_llms.openai_compat import OpenAICompatLLM
from fastdistill_llms.text_generation import TextGeneration


def test_components_are_registered_by_the_distribution():
    reg = Registry()
    ours = {c.name: c for c in reg.components() if c.distribution == "fastdistill-llms"}
    assert set(ours) == {"openai_compat", "embedded", "text_generation"}
    assert ours["text_generation"].kind == "step" and ours["text_generation"].obj is TextGeneration
    assert ours["openai_compat"].kind == "model" and ours["openai_compat"].obj is OpenAICompatLLM
    assert ours["embedded"].kind == "model" and ours["embedded"].obj is EmbeddedLLM
    assert all(c.version == "0.1.0" and c.plugin == "llms" for c in ours.values())
    assert reg.model("embedded") is EmbeddedLLM


def test_plugin_import_and_registration_do_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "import fastdistill_llms.plugin as p\n"
        "got = []\n"
        "p.register_models(lambda obj, name=None, **m: got.append(name))\n"
        "p.register_steps(lambda obj, name=None, **m: got.append(name))\n"
        "assert sorted(got) == ['embedded', 'openai_compat', 'text_generation'], got\n"
        "heavy = [m for m in ('httpx', 'xllamacpp', 'httpcore') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
