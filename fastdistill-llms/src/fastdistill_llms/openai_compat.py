"""``openai_compat``: any server that speaks OpenAI's chat-completions API.

OpenAI, OpenRouter, vLLM, llama.cpp's server, Ollama's ``/v1`` ... One ``httpx.AsyncClient`` and
one concurrency limit per event loop, created lazily inside the loop.  Transient failures (429,
5xx, connection errors, timeouts, malformed JSON) are retried with exponential backoff and
jitter, honouring ``Retry-After``; other 4xx answers are not retried.  A provider problem never
raises: the :class:`~fastdistill.Generation` says what went wrong (cases C12, C13).

The API key is read from the environment variable *named* by ``api_key_env`` at :meth:`load` and
kept only in private runtime state: it is never a field, so it never reaches ``repr``,
``model_dump``, :meth:`identity`, a pipeline document, a cache or a log.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastdistill import LLM, Generation, RuntimeParameter
from fastdistill.models import Message
from pydantic import Field, PrivateAttr, field_validator

from fastdistill_llms._kwargs import OPENAI_KEYS, normalize_generation_kwargs
from fastdistill_llms._runtime import ModelRuntime

#: longest wait honoured from a ``Retry-After`` header, in seconds
MAX_RETRY_AFTER_S = 120.0
#: longest computed backoff between two attempts, in seconds
MAX_BACKOFF_S = 30.0


class _Retryable(Exception):
    """One attempt failed in a way worth retrying."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _snippet(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


class OpenAICompatLLM(LLM):
    """A chat model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    :param base_url: the API root, e.g. ``https://api.openai.com/v1`` (runtime parameter: it does
        not change the model's identity).
    :param model: the model name sent in each request.
    :param api_key_env: NAME of the environment variable holding the API key (``None``: no key).
    :param generation_kwargs: request parameters applied to every call (direct or through a task);
        aliases such as ``max_new_tokens`` are mapped, unknown keys are an error.
    """

    component_name = "openai_compat"

    base_url: Annotated[str, RuntimeParameter("Root URL of the OpenAI-compatible API (…/v1).")] = (
        "http://127.0.0.1:8080/v1"
    )
    model: str = Field(description="Model name sent in each request.")
    api_key_env: str | None = Field(
        default="OPENAI_API_KEY",
        description="Name of the environment variable that holds the API key (not the key).",
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Timeout of one attempt, seconds.")
    max_retries: int = Field(default=3, ge=0, description="Retries after the first attempt.")
    backoff_base_s: float = Field(default=0.5, ge=0, description="First retry delay, seconds.")
    max_concurrency: int = Field(default=16, ge=1, description="Requests in flight per loop.")
    generation_kwargs: dict[str, Any] = Field(default_factory=dict)

    _rt: ModelRuntime = PrivateAttr(default_factory=ModelRuntime)

    @field_validator("generation_kwargs", mode="before")
    @classmethod
    def _check_kwargs(cls, value: Any) -> dict[str, Any]:
        if value is not None and not isinstance(value, Mapping):
            raise ValueError("generation_kwargs must be a mapping")
        return normalize_generation_kwargs(value, OPENAI_KEYS, owner="openai_compat")

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @property
    def model_name(self) -> str:
        """The ``model`` sent to the provider."""
        return self.model

    # ------------------------------------------------------------------ lifecycle
    def load(self) -> None:
        """Read the API key from the environment (if ``api_key_env`` names a set variable)."""
        import httpx  # noqa: F401  - fail early and clearly if the client library is missing

        self._rt.secret = os.environ.get(self.api_key_env) if self.api_key_env else None
        self._rt.loaded = True

    def unload(self) -> None:
        """Close the HTTP clients and forget the key."""
        self._rt.close_all(_close_client)
        self._rt.secret = None
        self._rt.loaded = False

    def _make_client(self) -> Any:
        import httpx

        headers = {"Content-Type": "application/json"}
        if self._rt.secret:
            headers["Authorization"] = f"Bearer {self._rt.secret}"
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_s),
            limits=httpx.Limits(
                max_connections=self.max_concurrency,
                max_keepalive_connections=self.max_concurrency,
            ),
            headers=headers,
        )
        return (client, asyncio.Semaphore(self.max_concurrency))

    # ------------------------------------------------------------------ requests
    def request_body(self, messages: Sequence[Message], **overrides: Any) -> dict[str, Any]:
        """The JSON body for ``messages``: constructor kwargs, then per-call overrides."""
        merged = dict(self.generation_kwargs)
        merged.update(normalize_generation_kwargs(overrides, OPENAI_KEYS, owner="openai_compat"))
        extra = merged.pop("extra_body", None) or {}
        body: dict[str, Any] = {"model": self.model, "messages": list(messages)}
        body.update({k: v for k, v in merged.items() if v is not None})
        body.update(extra)
        return body

    async def agenerate(self, messages: Sequence[Message], **overrides: Any) -> Generation:
        """One chat completion; retries transient failures; never raises for provider problems."""
        import httpx

        if not self._rt.loaded:
            self.load()
        body = self.request_body(messages, **overrides)
        client, sem = await self._rt.for_loop(self._make_client, _close_client)
        url = f"{self.base_url}/chat/completions"
        start = time.perf_counter()
        last: _Retryable | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt, last))
            try:
                async with sem:
                    gen = await self._attempt(client, url, body)
            except _Retryable as exc:
                last = exc
                continue
            except (httpx.TimeoutException, asyncio.TimeoutError) as exc:
                last = _Retryable("timeout", f"{type(exc).__name__}: {exc or 'timed out'}")
                continue
            except httpx.TransportError as exc:  # connect errors, reset connections ...
                last = _Retryable("provider_error", f"{type(exc).__name__}: {exc}")
                continue
            gen.latency_s = time.perf_counter() - start
            return gen
        assert last is not None
        tries = self.max_retries + 1
        return Generation(
            text=None,
            model=self.model,
            latency_s=time.perf_counter() - start,
            error_kind=last.kind,
            error=f"{last} (after {tries} attempt{'s' if tries > 1 else ''})",
        )

    def _delay(self, attempt: int, last: _Retryable | None) -> float:
        """Exponential backoff with jitter; a ``Retry-After`` from the server wins."""
        if last is not None and last.retry_after is not None:
            return min(last.retry_after, MAX_RETRY_AFTER_S)
        base = min(self.backoff_base_s * (2 ** (attempt - 1)), MAX_BACKOFF_S)
        return base * (0.5 + random.random())  # noqa: S311 - jitter, not cryptography

    async def _attempt(self, client: Any, url: str, body: dict[str, Any]) -> Generation:
        resp = await asyncio.wait_for(client.post(url, json=body), self.timeout_s)
        status = resp.status_code
        if status == 429 or status >= 500:
            raise _Retryable(
                "provider_error",
                f"HTTP {status}: {_snippet(resp.text)}",
                parse_retry_after(resp.headers.get("retry-after")),
            )
        if status >= 400:
            return Generation(
                text=None,
                model=self.model,
                error_kind="provider_error",
                error=f"HTTP {status}: {_snippet(resp.text)}",
            )
        try:
            data = json.loads(resp.content)
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise _Retryable(
                "provider_error",
                f"malformed response ({type(exc).__name__}): {_snippet(resp.text, 200)}",
            ) from None
        return parse_choice(data, choice, message, self.model)

    def identity(self) -> dict[str, Any]:
        """Model name and generation kwargs; never the base URL or the key."""
        return super().identity()


def parse_choice(
    data: Mapping[str, Any], choice: Mapping[str, Any], message: Mapping[str, Any], model: str
) -> Generation:
    """A :class:`Generation` from one OpenAI-style choice (shared with the embedded model)."""
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    finish = choice.get("finish_reason")
    usage_raw = data.get("usage") or {}
    usage = {
        k: int(usage_raw[k])
        for k in ("prompt_tokens", "completion_tokens")
        if isinstance(usage_raw.get(k), (int, float))
    }
    gen = Generation(text=content, model=model, finish_reason=finish, usage=usage)
    if content is None or not str(content).strip():
        gen.text = None
        gen.error_kind = "length" if finish == "length" else "empty_output"
        gen.error = (
            "no content before the token limit (finish_reason=length)"
            if finish == "length"
            else f"empty content (finish_reason={finish})"
        )
    return gen


async def _close_client(res: Any) -> None:
    client, _sem = res
    await client.aclose()
