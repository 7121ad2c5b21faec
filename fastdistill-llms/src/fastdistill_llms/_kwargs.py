"""Validation of ``generation_kwargs``: known keys only, aliases mapped explicitly (case C07).

An adapter that silently drops an unknown or misspelt key (``max_tokenz``) or a key spelt the way
another provider spells it (``max_new_tokens``) quietly falls back to the provider's default and
truncates every answer.  Here an alias is rewritten to the provider's name and anything unknown is
a :class:`ValueError` that names the key and lists the valid ones.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

#: request parameters of the OpenAI chat-completions API that a one-completion request may use
OPENAI_KEYS: frozenset[str] = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "reasoning_effort",
        "user",
        "extra_body",  # provider-specific parameters, merged verbatim into the request body
    }
)

#: parameters llama.cpp's server accepts in addition to the OpenAI ones
LLAMACPP_KEYS: frozenset[str] = (OPENAI_KEYS - {"extra_body", "user", "reasoning_effort"}) | {
    "top_k",
    "min_p",
    "repeat_penalty",
    "repeat_last_n",
    "grammar",
    "json_schema",
}

#: other spellings (Hugging Face, Ollama, Anthropic, vLLM ...) -> OpenAI name
ALIASES: Mapping[str, str] = {
    "max_new_tokens": "max_tokens",
    "num_predict": "max_tokens",
    "max_length": "max_tokens",
    "stop_sequences": "stop",
    "random_seed": "seed",
    "repetition_penalty": "repeat_penalty",
}

#: keys that are refused with a specific explanation
REFUSED: Mapping[str, str] = {
    "n": "one request returns one completion; run the task several times instead",
    "stream": "streaming is not supported; responses are read whole",
    "messages": "messages come from the task's template, not from generation_kwargs",
    "model": "set the model with the adapter's `model` field",
}


def normalize_generation_kwargs(
    kwargs: Mapping[str, Any] | None, allowed: frozenset[str], *, owner: str
) -> dict[str, Any]:
    """Return ``kwargs`` with aliases mapped to canonical names; reject unknown keys.

    :param kwargs: the user's keyword arguments (``None`` is treated as empty).
    :param allowed: canonical keys the provider accepts.
    :param owner: name used in error messages (e.g. ``"openai_compat"``).
    :raises ValueError: for an unknown key (the message names it and lists the valid ones), a
        refused key, or a key given both under an alias and its canonical name.
    """
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ValueError("generation_kwargs must be a mapping")
    out: dict[str, Any] = {}
    for key, value in dict(kwargs or {}).items():
        if not isinstance(key, str):
            raise ValueError(f"{owner}: generation_kwargs keys must be strings, got {key!r}")
        if key in REFUSED:
            raise ValueError(
                f"{owner}: generation_kwargs key {key!r} is not allowed: {REFUSED[key]}"
            )
        canonical = ALIASES.get(key, key)
        if canonical not in allowed:
            valid = sorted(allowed)
            close = difflib.get_close_matches(key, valid + sorted(ALIASES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            aliases = ", ".join(f"{a}->{c}" for a, c in sorted(ALIASES.items()) if c in allowed)
            raise ValueError(
                f"{owner}: unknown generation_kwargs key {key!r}{hint}. "
                f"Valid keys: {', '.join(valid)}. Accepted aliases: {aliases}."
            )
        if canonical in out:
            raise ValueError(
                f"{owner}: generation_kwargs sets {canonical!r} twice (as {key!r} and as an "
                "alias or canonical name); keep one"
            )
        out[canonical] = value
    if "max_tokens" in out and out["max_tokens"] is not None:
        mt = out["max_tokens"]
        if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
            raise ValueError(f"{owner}: max_tokens must be a positive integer, got {mt!r}")
    if "temperature" in out and out["temperature"] is not None:
        t = out["temperature"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0:
            raise ValueError(f"{owner}: temperature must be a number >= 0, got {t!r}")
    if "extra_body" in out and not isinstance(out["extra_body"], Mapping):
        raise ValueError(f"{owner}: extra_body must be a mapping, got {out['extra_body']!r}")
    return out
