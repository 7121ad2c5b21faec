"""fastdistill plugin entry point of ``fastdistill-llms`` (entry point group ``fastdistill``).

Cheap to import: the component modules are imported inside the hooks, and they import httpx and
xllamacpp only when a model is loaded or used.
"""

from __future__ import annotations

from typing import Any

from fastdistill.hookspecs import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    """``openai_compat`` (any OpenAI-compatible endpoint) and ``embedded`` (local SmolLM2)."""
    from fastdistill_llms.embedded import EmbeddedLLM
    from fastdistill_llms.openai_compat import OpenAICompatLLM

    register(OpenAICompatLLM, name="openai_compat")
    register(EmbeddedLLM, name="embedded")


@hookimpl
def register_steps(register: Any) -> None:
    """``text_generation``: one LLM completion per row from a prompt template."""
    from fastdistill_llms.text_generation import TextGeneration

    register(TextGeneration, name="text_generation")
