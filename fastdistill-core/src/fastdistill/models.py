"""The model contract: :class:`LLM` and the :class:`Generation` it returns.

Model classes are registered through ``register_models``.  A model never raises for a provider
problem on one request: :meth:`LLM.agenerate` returns a :class:`Generation` whose
``error_kind`` says what went wrong (``provider_error``, ``timeout``, ``empty_output``,
``length``), so a task can reject exactly that row and keep the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fastdistill.step import _Component

Message = dict[str, Any]

#: keys of the per-row generation metadata; identical for successful and failed rows (case C02)
GENERATION_META_KEYS = (
    "model",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "latency_s",
    "error_kind",
    "error",
)


@dataclass
class Generation:
    """The outcome of one LLM request.

    ``text`` is ``None`` when the request failed or returned no content; ``error_kind`` then says
    why.  ``usage`` holds ``prompt_tokens`` and ``completion_tokens`` when the provider reports
    them.  ``cached`` is true for an answer served by the LLM response cache
    (:class:`fastdistill.cache.LLMResponseCache`).
    """

    text: str | None
    model: str = ""
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    latency_s: float = 0.0
    error_kind: str | None = None
    error: str | None = None
    #: the validated object of a structured-output request (JSON-ready), ``None`` otherwise
    parsed: Any = None
    #: True when the answer came from the LLM response cache instead of the model (not part of
    #: :meth:`meta`, so rows stay identical whether their answer was cached or not)
    cached: bool = False

    @property
    def ok(self) -> bool:
        """True when there is usable text and no error."""
        return self.error_kind is None and bool(self.text and self.text.strip())

    def meta(self) -> dict[str, Any]:
        """Per-row metadata with the same keys whatever the outcome (see GENERATION_META_KEYS)."""
        return {
            "model": self.model or None,
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.usage.get("prompt_tokens"),
            "completion_tokens": self.usage.get("completion_tokens"),
            "latency_s": round(self.latency_s, 4),
            "error_kind": self.error_kind,
            "error": self.error,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class LLM(_Component):
    """Base class of chat models.  Subclasses implement :meth:`agenerate`.

    ``generation_kwargs`` given at construction apply to every request, whether the model is
    called by a task or directly (case C07).
    """

    generation_kwargs: dict[str, Any] = {}

    @property
    def model_name(self) -> str:
        """Human-readable model identifier (used in metadata and reports)."""
        return type(self).__name__

    def load(self) -> None:
        """Prepare clients or weights.  Called once before use; heavy imports belong here."""

    def unload(self) -> None:
        """Release what :meth:`load` acquired."""

    async def agenerate(self, messages: Sequence[Message], **overrides: Any) -> Generation:
        """Generate one completion for ``messages``; never raise for a provider problem."""
        raise NotImplementedError(f"{type(self).__name__}.agenerate() is not implemented")

    def generate(self, conversations: Sequence[Sequence[Message]], **overrides: Any) -> list[
        Generation
    ]:
        """Synchronous helper: generate for several conversations concurrently."""
        import asyncio  # here, not at module level: ``import fastdistill`` stays cheap

        async def _all() -> list[Generation]:
            return list(
                await asyncio.gather(*(self.agenerate(c, **overrides) for c in conversations))
            )

        return asyncio.run(_all())

    def identity(self) -> dict[str, Any]:
        """What defines this model's answers (for signatures and response caches); no secrets."""
        return {
            "component": type(self).__name__,
            "version": self.component_version,
            "model": self.model_name,
            "generation_kwargs": dict(sorted(self.generation_kwargs.items())),
        }
