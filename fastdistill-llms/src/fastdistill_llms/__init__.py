"""fastdistill-llms: LLM components for fastdistill.

- ``text_generation`` (:class:`TextGeneration`): prompt template over row columns -> completion.
- ``openai_compat`` (:class:`OpenAICompatLLM`): any OpenAI-compatible chat-completions API.
- ``embedded`` (:class:`EmbeddedLLM`): SmolLM2-135M-Instruct in-process via llama.cpp; also
  :class:`EmbeddedServer` / :func:`serve` for a local OpenAI-compatible endpoint.

Attributes are imported lazily, so ``import fastdistill_llms`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "TextGeneration": "fastdistill_llms.text_generation",
    "OpenAICompatLLM": "fastdistill_llms.openai_compat",
    "EmbeddedLLM": "fastdistill_llms.embedded",
    "EmbeddedServer": "fastdistill_llms.embedded",
    "serve": "fastdistill_llms.embedded",
}

__all__ = [
    "EmbeddedLLM",
    "EmbeddedServer",
    "OpenAICompatLLM",
    "TextGeneration",
    "__version__",
    "serve",
]

if TYPE_CHECKING:
    from fastdistill_llms.embedded import EmbeddedLLM, EmbeddedServer, serve
    from fastdistill_llms.openai_compat import OpenAICompatLLM
    from fastdistill_llms.text_generation import TextGeneration


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fastdistill_llms' has no attribute {name!r}")
