"""Fixtures for fastdistill-llms tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llms_fakes import FakeOpenAI, running_fake


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A scriptable OpenAI-compatible server on 127.0.0.1 that records requests."""
    with running_fake() as fake:
        yield fake
