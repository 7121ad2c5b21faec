"""``anthropic``: Claude models through Anthropic's Messages API, with the official SDK.

An extra: ``pip install "fastdistill-llms[anthropic]"``.  Without the SDK, loading the model
raises :class:`fastdistill.MissingDependencyError` naming that command; registering it does not
import the SDK.

Retries are the SDK's own (exponential backoff honouring ``retry-after``, on 408/409/429/5xx and
connection errors), bounded by ``max_retries``.  A provider problem never raises: timeouts
become ``error_kind="timeout"``, every other API or connection error ``provider_error``, and a
reply without text ``empty_output`` (``length`` when cut at ``max_tokens``).  The key is read
from the environment variable named by ``api_key_env`` and never stored in a field.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastdistill import LLM, Generation, MissingDependencyError, RuntimeParameter
from fastdistill.models import Message
from pydantic import Field, PrivateAttr, field_validator

from fastdistill_llms._kwargs import normalize_generation_kwargs
from fastdistill_llms._runtime import ModelRuntime

INSTALL_HINT = 'pip install "fastdistill-llms[anthropic]"'
#: Messages API parameters a one-completion request may set
ANTHROPIC_KEYS: frozenset[str] = frozenset(
    {"max_tokens", "temperature", "top_p", "top_k", "stop", "metadata", "thinking", "extra_body"}
)
#: Anthropic stop reasons -> the OpenAI-style finish reasons used in row metadata
STOP_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def import_anthropic() -> Any:
    """The ``anthropic`` module, or :class:`MissingDependencyError` with the install command."""
    try:
        import anthropic
    except ImportError as exc:
        raise MissingDependencyError(
            f"the anthropic model needs the anthropic SDK ({exc}). Run: {INSTALL_HINT}"
        ) from exc
    return anthropic


def split_system(messages: Sequence[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """Anthropic takes system text apart from the turns: ``(system, turns)``."""
    system = [str(m.get("content", "")) for m in messages if m.get("role") == "system"]
    turns = [
        {"role": m["role"], "content": m.get("content", "")}
        for m in messages
        if m.get("role") != "system"
    ]
    return ("\n\n".join(system) if system else None), turns


class AnthropicLLM(LLM):
    """A Claude model behind the Messages API (or any server speaking it, via ``base_url``).

    :param model: e.g. ``claude-sonnet-4-5``.
    :param base_url: API root (runtime parameter; ``None``: Anthropic's).
    :param api_key_env: NAME of the environment variable holding the key.
    :param timeout_s: timeout of one attempt.
    :param max_retries: the SDK's retries after the first attempt.
    :param max_concurrency: requests in flight per event loop.
    :param generation_kwargs: ``max_tokens`` (default 1024), ``temperature``, ``top_p``,
        ``top_k``, ``stop`` (``stop_sequences``), ``metadata``, ``thinking``, ``extra_body``;
        aliases such as ``max_new_tokens`` are mapped, unknown keys are an error.
    """

    component_name = "anthropic"

    model: str = Field(description="Claude model name.")
    base_url: Annotated[str | None, RuntimeParameter("Messages API root URL.")] = None
    api_key_env: str | None = "ANTHROPIC_API_KEY"
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    max_concurrency: int = Field(default=16, ge=1)
    generation_kwargs: dict[str, Any] = Field(default_factory=lambda: {"max_tokens": 1024})

    _rt: ModelRuntime = PrivateAttr(default_factory=ModelRuntime)

    @field_validator("generation_kwargs", mode="before")
    @classmethod
    def _check_kwargs(cls, value: Any) -> dict[str, Any]:
        out = normalize_generation_kwargs(value, ANTHROPIC_KEYS, owner="anthropic")
        out.setdefault("max_tokens", 1024)  # required by the Messages API
        return out

    @property
    def model_name(self) -> str:
        """The Claude model name."""
        return self.model

    def load(self) -> None:
        """Import the SDK (clear error if missing) and read the key from the environment."""
        import_anthropic()
        self._rt.secret = os.environ.get(self.api_key_env) if self.api_key_env else None
        self._rt.loaded = True

    def unload(self) -> None:
        """Close the clients and forget the key."""
        self._rt.close_all(_close_client)
        self._rt.secret = None
        self._rt.loaded = False

    def _make_client(self) -> Any:
        anthropic = import_anthropic()
        client = anthropic.AsyncAnthropic(
            api_key=self._rt.secret or "no-key",
            base_url=self.base_url,
            timeout=self.timeout_s,
            max_retries=self.max_retries,
        )
        return (client, asyncio.Semaphore(self.max_concurrency))

    def request_params(self, messages: Sequence[Message], **overrides: Any) -> dict[str, Any]:
        """Keyword arguments of ``messages.create``: constructor kwargs, then overrides."""
        merged = dict(self.generation_kwargs)
        merged.update(normalize_generation_kwargs(overrides, ANTHROPIC_KEYS, owner="anthropic"))
        system, turns = split_system(messages)
        params: dict[str, Any] = {"model": self.model, "messages": turns}
        if system:
            params["system"] = system
        if "stop" in merged:
            stop = merged.pop("stop")
            params["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        extra = dict(merged.pop("extra_body", None) or {})
        params.update({k: v for k, v in merged.items() if v is not None})
        if extra:
            params["extra_body"] = extra
        return params

    @staticmethod
    def sdk_params(client: Any, params: dict[str, Any]) -> dict[str, Any]:
        """Move what this SDK version's ``messages.create`` does not accept into ``extra_body``.

        Recent SDKs dropped some sampling parameters (``temperature``, ``top_p``, ``top_k``) from
        the typed signature; servers may still take them, so they travel in the body verbatim.
        """
        import inspect

        accepted = set(inspect.signature(client.messages.create).parameters)
        out = {k: v for k, v in params.items() if k in accepted}
        moved = {k: v for k, v in params.items() if k not in accepted}
        if moved:
            out["extra_body"] = {**moved, **dict(params.get("extra_body") or {})}
        return out

    async def agenerate(self, messages: Sequence[Message], **overrides: Any) -> Generation:
        """One message; SDK retries; never raises for a provider problem."""
        if not self._rt.loaded:
            self.load()
        anthropic = import_anthropic()
        params = self.request_params(messages, **overrides)
        client, sem = await self._rt.for_loop(self._make_client, _close_client)
        start = time.perf_counter()
        try:
            async with sem:
                resp = await client.messages.create(**self.sdk_params(client, params))
        except anthropic.APITimeoutError as exc:
            return self._failed("timeout", exc, start)
        except anthropic.APIStatusError as exc:
            return self._failed("provider_error", exc, start, f"HTTP {exc.status_code}: ")
        except anthropic.APIError as exc:  # connection errors, malformed responses
            return self._failed("provider_error", exc, start)
        return self._parse(resp, time.perf_counter() - start)

    def _failed(self, kind: str, exc: Exception, start: float, prefix: str = "") -> Generation:
        tries = self.max_retries + 1
        return Generation(
            text=None,
            model=self.model,
            latency_s=time.perf_counter() - start,
            error_kind=kind,
            error=f"{prefix}{type(exc).__name__}: {exc} (after up to {tries} attempts)",
        )

    def _parse(self, resp: Any, latency: float) -> Generation:
        text = "".join(
            getattr(block, "text", "") or ""
            for block in (resp.content or ())
            if getattr(block, "type", None) == "text"
        )
        finish = STOP_REASONS.get(str(resp.stop_reason), resp.stop_reason)
        usage: dict[str, int] = {}
        if resp.usage is not None:
            usage = {
                "prompt_tokens": int(resp.usage.input_tokens or 0),
                "completion_tokens": int(resp.usage.output_tokens or 0),
            }
        gen = Generation(
            text=text or None, model=self.model, finish_reason=finish, usage=usage,
            latency_s=latency,
        )
        if not text.strip():
            gen.text = None
            gen.error_kind = "length" if finish == "length" else "empty_output"
            gen.error = f"no text in the reply (stop_reason={resp.stop_reason})"
        return gen


async def _close_client(res: Any) -> None:
    client, _sem = res
    await client.close()
