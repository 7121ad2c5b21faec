"""``openai_compat``: any server that speaks OpenAI's chat-completions API.

OpenAI, OpenRouter, vLLM, llama.cpp's server, Ollama's ``/v1`` ... One concurrency limit
(``max_concurrency`` requests in flight) and one keep-alive ``aiohttp`` session per event loop,
created lazily inside the loop and closed with it or by :meth:`OpenAICompatLLM.unload` (see
:mod:`fastdistill_llms._httppool`).  Transient failures (429, 5xx, connection errors, timeouts,
malformed JSON) are retried with exponential backoff and jitter, honouring ``Retry-After``; other
4xx answers are not retried; an unreachable server is a ``ConnectError`` naming the URL.  A
provider problem never raises: the :class:`~fastdistill.Generation` says what went wrong (cases
C12, C13).

Optional budgets (``rpm``, ``tpm``) pace requests before they are sent.  ``structured_output``
(a JSON schema, or a pydantic model class stored as its JSON schema) asks the server for JSON
matching it (``response_format`` for OpenAI-style servers, the ``json_schema`` field for
llama.cpp) and validates each answer: ``Generation.parsed`` holds the object, and an answer that
does not match is ``invalid_output`` (case C08: the schema survives a document round trip).

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
import re
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from fastdistill import LLM, Generation, RuntimeParameter
from fastdistill.models import Message
from pydantic import Field, PrivateAttr, field_validator, model_validator

from fastdistill_llms._httppool import HttpPool, describe_error, display_url
from fastdistill_llms._kwargs import OPENAI_KEYS, normalize_generation_kwargs
from fastdistill_llms._ratelimit import RateBudget, estimate_tokens
from fastdistill_llms._runtime import ModelRuntime
from fastdistill_llms.structured import (
    OutputValidator,
    request_fields,
    schema_of,
    validate_generation,
    validator_for,
)

#: ``asyncio.timeout`` (Python >= 3.11), else ``None`` (``asyncio.wait_for`` is used)
_timeout = getattr(asyncio, "timeout", None)

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
    :param rpm: requests-per-minute budget (``None``: unlimited), shared by all uses of this
        instance; retries count.
    :param tpm: tokens-per-minute budget (prompt + completion; estimated before sending,
        corrected with the reported usage).
    :param structured_output: JSON schema of the answer (a pydantic model class is stored as its
        schema); answers are parsed and validated, ``invalid_output`` when they do not match.
    :param max_concurrency: requests in flight per event loop (default 64), shared by every task
        using this instance in that loop; a task's ``max_in_flight`` above it is capped by it.
    :param structured_output_mode: ``response_format`` (OpenAI ``json_schema`` response format)
        or ``json_schema`` (llama.cpp's request field).
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
    max_concurrency: int = Field(
        default=64,
        ge=1,
        description="Requests in flight per event loop (a task's max_in_flight above it waits).",
    )
    generation_kwargs: dict[str, Any] = Field(default_factory=dict)
    rpm: float | None = Field(default=None, gt=0, description="Requests-per-minute budget.")
    tpm: float | None = Field(default=None, gt=0, description="Tokens-per-minute budget.")
    structured_output: dict[str, Any] | None = Field(
        default=None, description="JSON schema the answer must match (or a pydantic model)."
    )
    structured_output_mode: Literal["response_format", "json_schema"] = "response_format"

    _rt: ModelRuntime = PrivateAttr(default_factory=ModelRuntime)

    @field_validator("generation_kwargs", mode="before")
    @classmethod
    def _check_kwargs(cls, value: Any) -> dict[str, Any]:
        return normalize_generation_kwargs(value, OPENAI_KEYS, owner="openai_compat")

    @field_validator("structured_output", mode="before")
    @classmethod
    def _check_schema(cls, value: Any) -> dict[str, Any] | None:
        return None if value is None else schema_of(value)

    @model_validator(mode="after")
    def _check_structured(self) -> OpenAICompatLLM:
        if self.structured_output is not None and "response_format" in self.generation_kwargs:
            raise ValueError(
                "set either structured_output or generation_kwargs['response_format'], not both"
            )
        return self

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
        import aiohttp  # noqa: F401  - fail early and clearly if the client library is missing

        self._rt.secret = os.environ.get(self.api_key_env) if self.api_key_env else None
        with self._rt.lock:
            self._rt.extra.setdefault("budget", RateBudget(self.rpm, self.tpm))
        self._rt.loaded = True

    def unload(self) -> None:
        """Close the HTTP sessions (one per event loop that used the model) and forget the key."""
        self._rt.close_all(_close_pool)
        self._rt.secret = None
        self._rt.extra.clear()
        self._rt.loaded = False

    def _make_pool(self) -> HttpPool:
        headers = {"Content-Type": "application/json"}
        if self._rt.secret:
            headers["Authorization"] = f"Bearer {self._rt.secret}"
        return HttpPool(self.max_concurrency, headers, self.base_url)

    # ------------------------------------------------------------------ requests
    def request_body(self, messages: Sequence[Message], **overrides: Any) -> dict[str, Any]:
        """The JSON body for ``messages``: constructor kwargs, then per-call overrides."""
        merged = dict(self.generation_kwargs)
        merged.update(normalize_generation_kwargs(overrides, OPENAI_KEYS, owner="openai_compat"))
        extra = merged.pop("extra_body", None) or {}
        body: dict[str, Any] = {"model": self.model, "messages": list(messages)}
        body.update({k: v for k, v in merged.items() if v is not None})
        if self.structured_output is not None:
            body.update(request_fields(self.structured_output, self.structured_output_mode))
        body.update(extra)
        return body

    def output_validator(self) -> OutputValidator | None:
        """The validator of ``structured_output`` (built once per instance), or ``None``."""
        return validator_for(self._rt, self.structured_output)

    async def agenerate(self, messages: Sequence[Message], **overrides: Any) -> Generation:
        """One chat completion; retries transient failures; never raises for provider problems."""
        import aiohttp

        rt = self._rt
        if not rt.loaded:
            self.load()
        body = self.request_body(messages, **overrides)
        data = _encode(body)
        pool: HttpPool = await rt.for_loop(self._make_pool, _close_pool)
        budget: RateBudget | None = rt.extra.get("budget")
        if budget is not None and not budget.active:
            budget = None
        estimate = 0
        if budget is not None:
            estimate = estimate_tokens(len(json.dumps(body["messages"])), body.get("max_tokens"))
        url = f"{self.base_url}/chat/completions"
        start = time.perf_counter()
        last: _Retryable | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt, last))
            if budget is not None:
                await asyncio.sleep(budget.reserve(estimate))
            try:
                async with pool.slot():  # waiting for a slot is not part of the timeout
                    gen = await self._attempt(pool, url, data)
            except _Retryable as exc:
                last = exc
                continue
            except asyncio.TimeoutError:  # also aiohttp's own socket timeouts
                last = _Retryable(
                    "timeout",
                    f"TimeoutError: no complete answer within {self.timeout_s:g} s "
                    f"from {display_url(url)}",
                )
                continue
            except (aiohttp.ClientError, OSError) as exc:  # connect errors, reset connections
                last = _Retryable("provider_error", describe_error(exc, url))
                continue
            gen.latency_s = time.perf_counter() - start
            if budget is not None and gen.usage:
                budget.settle(estimate, sum(gen.usage.values()))
            validator = self.output_validator()
            return gen if validator is None else validate_generation(gen, validator)
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

    async def _attempt(self, pool: HttpPool, url: str, data: bytes) -> Generation:
        if _timeout is not None:  # Python >= 3.11: no extra task per request
            async with _timeout(self.timeout_s):
                status, retry_after, content = await pool.post(url, data)
        else:  # pragma: no cover - Python 3.10
            status, retry_after, content = await asyncio.wait_for(
                pool.post(url, data), self.timeout_s
            )
        if status == 429 or status >= 500:
            raise _Retryable(
                "provider_error",
                f"HTTP {status}: {_snippet(_text(content))}",
                parse_retry_after(retry_after),
            )
        if status >= 400:
            text = _text(content)
            return Generation(
                text=None,
                model=self.model,
                # a prompt too long for the model fails the same way every time: not retried
                error_kind="invalid_input" if is_context_overflow(text) else "provider_error",
                error=f"HTTP {status}: {_snippet(text)}",
            )
        try:
            data_out = json.loads(content)
            choice = data_out["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise _Retryable(
                "provider_error",
                f"malformed response ({type(exc).__name__}): {_snippet(_text(content), 200)}",
            ) from None
        return parse_choice(data_out, choice, message, self.model)

    def identity(self) -> dict[str, Any]:
        """Model name, generation kwargs and output schema; never the base URL or the key."""
        ident = super().identity()
        if self.structured_output is not None:
            ident["structured_output"] = self.structured_output
            ident["structured_output_mode"] = self.structured_output_mode
        return ident


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


def _encode(body: dict[str, Any]) -> bytes:
    """The request body as sent: compact UTF-8 JSON (NaN/Infinity are not JSON: an error)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


#: what servers say when a prompt does not fit the model's context (llama.cpp, OpenAI, vLLM,
#: Anthropic): such a request can never succeed as it is
_CONTEXT_OVERFLOW = re.compile(
    r"exceed_context_size|exceeds the available context|context_length_exceeded"
    r"|maximum context length|prompt is too long|longer than the model's context",
    re.IGNORECASE,
)


def is_context_overflow(message: str) -> bool:
    """True when a provider's error message says the prompt does not fit the context."""
    return bool(_CONTEXT_OVERFLOW.search(message))


def _text(content: bytes) -> str:
    return content.decode("utf-8", "replace")


async def _close_pool(pool: HttpPool) -> None:
    await pool.aclose()
