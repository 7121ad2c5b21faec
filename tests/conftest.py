"""Suite-wide isolation: the LLM response cache never touches the user's home folder, and each
test starts with an empty one (tests that want a shared cache set FASTDISTILL_CACHE_DIR)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # module- and session-scoped fixtures run before the per-test fixture below
    os.environ.setdefault("FASTDISTILL_CACHE_DIR", tempfile.mkdtemp(prefix="fastdistill-cache-"))


@pytest.fixture(autouse=True)
def _fresh_llm_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.mktemp("llm-cache")
    monkeypatch.setenv("FASTDISTILL_CACHE_DIR", str(path))
    return path
