"""End to end: the Text2SQL example on real Spider rows with the real embedded teacher."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fastdistill import Pipeline, Registry

pytestmark = [pytest.mark.e2e, pytest.mark.model]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "text2sql" / "pipeline.yaml"


@pytest.fixture(scope="module")
def run_5(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("t2s")
    registry = Registry()
    assert not registry.load_errors(), registry.load_errors()
    pipeline = Pipeline.load(EXAMPLE, registry)
    result = pipeline.run(out, limit=5, registry=registry)
    return out, result


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_input_row_is_kept_or_rejected_once(run_5) -> None:
    out, result = run_5
    kept = _jsonl(out / "dataset.jsonl")
    rejected = _jsonl(out / "rejected.jsonl")
    assert result.kept == len(kept) and result.rejected == len(rejected)
    ids = [r["id"] for r in kept] + [r["id"] for r in rejected]
    source = [json.loads(line)["id"] for line in
              (REPO / "examples/text2sql/data/spider_dev_subset.jsonl").read_text().splitlines()[:5]]
    assert sorted(ids) == sorted(source)
    for row in kept:
        assert row["exec_pass"] is True and row["exec_status"] == "match"
        assert row["sql"].strip() and row["sample_id"]
        assert not any(k.startswith("_") for k in row)
    for row in rejected:
        rej = row["_rejection"]
        assert rej["reason"] and rej["step"] in Pipeline.load(EXAMPLE).steps


def test_quality_report_exec_pass_rate_matches_rows(run_5) -> None:
    out, _ = run_5
    quality = json.loads((out / "quality_report.json").read_text())
    rows = _jsonl(out / "dataset.jsonl") + _jsonl(out / "rejected.jsonl")
    evaluated = [r for r in rows if "exec_status" in r]
    gate = quality["gates"]["exec_eval"]
    assert gate["evaluated"] == len(evaluated)
    if evaluated:
        expected = sum(1 for r in evaluated if r["exec_pass"]) / len(evaluated)
        assert gate["exec_pass_rate"] == pytest.approx(expected)
    assert quality["kept"] + quality["rejected"] == 5
    assert sum(quality["reject_reasons"].values()) == quality["rejected"]


def test_reports_and_exports_exist(run_5) -> None:
    out, _ = run_5
    timing = json.loads((out / "timing_report.json").read_text())
    assert timing["steps"]["teacher"]["rows_in"] >= 1
    assert timing["wall_s"] > 0
    for step in Pipeline.load(EXAMPLE).steps:
        manifest = json.loads((out / "manifests" / f"{step}.json").read_text())
        assert manifest["stage"] == step and manifest["step_signature"]
    assert (out / "mlx" / "train.jsonl").exists() and (out / "mlx" / "valid.jsonl").exists()
    assert (out / "pipeline.yaml").read_text().startswith("schema_version")


def test_cli_run_and_plugins(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "fastdistill.cli", "run", str(EXAMPLE), "--limit", "2",
         "--output", str(out), "--quiet", "--json"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["kept"] + summary["rejected"] == 2
    assert "quality" in proc.stderr and str(out) in proc.stderr
    plugins = subprocess.run(
        [sys.executable, "-m", "fastdistill.cli", "plugins", "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    listed = {p["distribution"]: p for p in json.loads(plugins.stdout)}
    for dist in ("fastdistill-core", "fastdistill-steps", "fastdistill-llms", "fastdistill-cuda"):
        assert dist in listed, listed.keys()
        assert listed[dist]["version"] and listed[dist]["components"] and not listed[dist]["error"]


def test_instructions_example_runs_from_yaml(tmp_path: Path) -> None:
    pipeline = Pipeline.load(REPO / "examples" / "instructions" / "pipeline.yaml")
    result = pipeline.run(tmp_path / "instr", limit=2)
    rows = result.read_dataset() + result.read_rejected()
    assert len(rows) == 2
    for row in result.read_dataset():
        assert row["generation"].strip() and row["generation_meta"]["completion_tokens"] > 0
    train = (tmp_path / "instr" / "chat" / "train.jsonl").read_text().splitlines()
    valid = (tmp_path / "instr" / "chat" / "valid.jsonl").read_text().splitlines()
    assert len(train) + len(valid) == result.kept
