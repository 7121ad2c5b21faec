"""fastdistill-llms: LLM components for fastdistill.

- ``text_generation`` (:class:`TextGeneration`): prompt template over row columns -> completion.
- ``openai_compat`` (:class:`OpenAICompatLLM`): any OpenAI-compatible chat-completions API.
- ``embedded`` (:class:`EmbeddedLLM`): SmolLM2-135M-Instruct in-process via llama.cpp; also
  :class:`EmbeddedServer` / :func:`serve` for a local OpenAI-compatible endpoint.

The modules import httpx and xllamacpp only when a model loads, so this import stays cheap.
"""

from __future__ import annotations

from fastdistill_llms.embedded import EmbeddedLLM, EmbeddedServer, serve
from fastdistill_llms.openai_compat import OpenAICompatLLM
from fastdistill_llms.text_generation import TextGeneration

__version__ = "0.1.0"

__all__ = [
    "EmbeddedLLM",
    "EmbeddedServer",
    "OpenAICompatLLM",
    "TextGeneration",
    "__version__",
    "serve",
]
