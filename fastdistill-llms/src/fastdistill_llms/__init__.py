"""fastdistill-llms: LLM components for fastdistill.

Tasks (steps): ``text_generation`` (:class:`~fastdistill_llms.text_generation.TextGeneration`),
``chat_generation`` (:class:`~fastdistill_llms.chat_generation.ChatGeneration`), ``llm_judge``
(:class:`~fastdistill_llms.judge.LLMJudge`), ``self_instruct``
(:class:`~fastdistill_llms.synthetic.SelfInstruct`), ``evol_instruct``
(:class:`~fastdistill_llms.synthetic.EvolInstruct`).

Models: ``openai_compat`` (:class:`~fastdistill_llms.openai_compat.OpenAICompatLLM`),
``embedded`` (:class:`~fastdistill_llms.embedded.EmbeddedLLM`, local llama.cpp; also
:class:`~fastdistill_llms.embedded.EmbeddedServer` / :func:`~fastdistill_llms.embedded.serve`),
``anthropic`` (:class:`~fastdistill_llms.anthropic_llm.AnthropicLLM`, extra ``[anthropic]``),
``transformers`` (:class:`~fastdistill_llms.transformers_llm.TransformersLLM`, extra
``[transformers]``).

Import each component from the module that defines it (``from fastdistill_llms.embedded import
EmbeddedLLM``).  The package root re-exports nothing, so plugin discovery (which imports
:mod:`fastdistill_llms.plugin`) builds no component class; the modules import aiohttp, xllamacpp,
anthropic, torch and transformers only when a model loads.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
