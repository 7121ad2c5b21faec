"""Caches: the LLM response cache (request content -> successful generation).

Importing this package is cheap: ``sqlite3`` is imported only when a cache is first used.
"""

from __future__ import annotations

from fastdistill.cache.llm_cache import (
    CACHE_DIR_ENV,
    LLMCacheError,
    LLMResponseCache,
    default_cache_dir,
    default_cache_path,
    request_key,
)

__all__ = [
    "CACHE_DIR_ENV",
    "LLMCacheError",
    "LLMResponseCache",
    "default_cache_dir",
    "default_cache_path",
    "request_key",
]
