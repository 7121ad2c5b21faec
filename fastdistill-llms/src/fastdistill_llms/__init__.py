"""fastdistill-llms: LLM components for fastdistill.

Tasks (steps): ``text_generation`` (:class:`TextGeneration`), ``chat_generation``
(:class:`ChatGeneration`), ``llm_judge`` (:class:`LLMJudge`), ``self_instruct``
(:class:`SelfInstruct`), ``evol_instruct`` (:class:`EvolInstruct`).

Models: ``openai_compat`` (:class:`OpenAICompatLLM`), ``embedded`` (:class:`EmbeddedLLM`, local
llama.cpp; also :class:`EmbeddedServer` / :func:`serve`), ``anthropic`` (:class:`AnthropicLLM`,
extra ``[anthropic]``), ``transformers`` (:class:`TransformersLLM`, extra ``[transformers]``).

The modules import httpx, xllamacpp, anthropic, torch and transformers only when a model loads,
so this import stays cheap.
"""

from __future__ import annotations

from fastdistill_llms.anthropic_llm import AnthropicLLM
from fastdistill_llms.chat_generation import ChatGeneration
from fastdistill_llms.embedded import EmbeddedLLM, EmbeddedServer, serve
from fastdistill_llms.judge import LLMJudge
from fastdistill_llms.openai_compat import OpenAICompatLLM
from fastdistill_llms.synthetic import EvolInstruct, SelfInstruct
from fastdistill_llms.text_generation import TextGeneration
from fastdistill_llms.transformers_llm import TransformersLLM

__version__ = "0.1.0"

__all__ = [
    "AnthropicLLM",
    "ChatGeneration",
    "EmbeddedLLM",
    "EmbeddedServer",
    "EvolInstruct",
    "LLMJudge",
    "OpenAICompatLLM",
    "SelfInstruct",
    "TextGeneration",
    "TransformersLLM",
    "__version__",
    "serve",
]
