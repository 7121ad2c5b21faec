"""Where the LLM response cache lives, and its error type."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from fastdistill.errors import FastDistillError

#: environment variable naming the cache folder
CACHE_DIR_ENV = "FASTDISTILL_CACHE_DIR"
#: file name of the response database inside the cache folder
DB_FILENAME = "llm_responses.sqlite"


class LLMCacheError(FastDistillError):
    """The response cache cannot be used (only raised with ``strict=True``)."""


def default_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$FASTDISTILL_CACHE_DIR``, else ``~/.cache/fastdistill``."""
    env = os.environ if env is None else env
    value = env.get(CACHE_DIR_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "fastdistill"


def default_cache_path(env: Mapping[str, str] | None = None) -> Path:
    """The response database in :func:`default_cache_dir`."""
    return default_cache_dir(env) / DB_FILENAME
