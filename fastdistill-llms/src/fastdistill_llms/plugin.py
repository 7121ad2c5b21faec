"""fastdistill plugin entry point of ``fastdistill-llms`` (entry point group ``fastdistill``).

Cheap to import: the component modules are imported inside the hooks, and they import httpx,
xllamacpp, anthropic, torch and transformers only when a model is loaded or used.
"""

from __future__ import annotations

from typing import Any

from fastdistill.hookspecs import hookimpl


@hookimpl
def register_models(register: Any) -> None:
    """``openai_compat``, ``embedded`` (local llama.cpp), ``anthropic`` and ``transformers``."""
    from fastdistill_llms.anthropic_llm import AnthropicLLM
    from fastdistill_llms.embedded import EmbeddedLLM
    from fastdistill_llms.openai_compat import OpenAICompatLLM
    from fastdistill_llms.transformers_llm import TransformersLLM

    register(OpenAICompatLLM, name="openai_compat")
    register(EmbeddedLLM, name="embedded")
    register(AnthropicLLM, name="anthropic")
    register(TransformersLLM, name="transformers")


@hookimpl
def register_steps(register: Any) -> None:
    """The tasks: text and chat generation, the judge, self-instruct and evol-instruct."""
    from fastdistill_llms.chat_generation import ChatGeneration
    from fastdistill_llms.judge import LLMJudge
    from fastdistill_llms.synthetic import EvolInstruct, SelfInstruct
    from fastdistill_llms.text_generation import TextGeneration

    register(TextGeneration, name="text_generation")
    register(ChatGeneration, name="chat_generation")
    register(LLMJudge, name="llm_judge")
    register(SelfInstruct, name="self_instruct")
    register(EvolInstruct, name="evol_instruct")
