"""fastdistill plugin entry point of ``fastdistill-llms`` (entry point group ``fastdistill``).

Cheap to import and to run: every component is registered lazily by its ``module:Class`` target,
so discovery imports no component module; those import aiohttp, xllamacpp, anthropic, torch and
transformers only when a model is loaded or used.
"""

from __future__ import annotations

from typing import Any

from fastdistill.hookspecs import hookimpl

#: registered model name -> ``module:Class`` (imported on first use)
MODELS = {
    "openai_compat": "fastdistill_llms.openai_compat:OpenAICompatLLM",
    "embedded": "fastdistill_llms.embedded:EmbeddedLLM",
    "anthropic": "fastdistill_llms.anthropic_llm:AnthropicLLM",
    "transformers": "fastdistill_llms.transformers_llm:TransformersLLM",
}

#: registered task name -> ``module:Class`` (imported on first use)
TASKS = {
    "text_generation": "fastdistill_llms.text_generation:TextGeneration",
    "chat_generation": "fastdistill_llms.chat_generation:ChatGeneration",
    "llm_judge": "fastdistill_llms.judge:LLMJudge",
    "self_instruct": "fastdistill_llms.synthetic:SelfInstruct",
    "evol_instruct": "fastdistill_llms.synthetic:EvolInstruct",
}


@hookimpl
def register_models(register: Any) -> None:
    """``openai_compat``, ``embedded`` (local llama.cpp), ``anthropic`` and ``transformers``."""
    for name, target in MODELS.items():
        register(target, name=name)


@hookimpl
def register_steps(register: Any) -> None:
    """The tasks: text and chat generation, the judge, self-instruct and evol-instruct."""
    for name, target in TASKS.items():
        register(target, name=name)
