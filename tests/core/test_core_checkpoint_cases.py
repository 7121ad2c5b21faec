"""Cases C03 (one execution folder, stable signatures) and C14 (checkpoints cost O(new data))."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Annotated, Any

from fastdistill import GeneratorStep, GlobalStep, Pipeline, RuntimeParameter, Step
from fastdistill.engine.checkpoint import STATE_DIR


class LoadNumbers(GeneratorStep):
    """Rows ``{"id": i, "word": ...}`` from a text file given only at run time."""

    path: Annotated[str | None, RuntimeParameter("words file", required=True)] = None

    def output_columns(self) -> list[str]:
        return ["id", "word"]

    def generate(self, ctx: Any):
        words = Path(ctx.resolve_path(self.path)).read_text().split()
        yield [{"id": i, "word": w} for i, w in enumerate(words)]


class Upper(Step):
    inputs = ("word",)
    outputs = ("upper",)

    def process(self, rows, ctx):
        return [{**r, "upper": r["word"].upper()} for r in rows]


def _step_dirs(out: Path) -> set[str]:
    return {p.name for p in (out / STATE_DIR / "steps").iterdir()}


def test_c03_one_folder_and_signature_per_run(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("x y z")
    b.write_text("p q")
    out = tmp_path / "out"
    pipeline = Pipeline("c03", LoadNumbers() >> Upper())
    first = pipeline.run(out, params={"load_numbers.path": str(a)})
    state = json.loads((out / STATE_DIR / "state.json").read_text())
    for name in ("dataset.jsonl", "rejected.jsonl", "pipeline.yaml", "quality_report.json"):
        assert (out / name).exists(), name
    # the signatures recorded are those the steps' checkpoints live under (one per step)
    assert set(state["step_signatures"].values()) == _step_dirs(out)
    assert first.kept == 3
    again = Pipeline("c03", LoadNumbers() >> Upper()).run(out, params={"load_numbers.path": str(a)})
    assert again.reused and _step_dirs(out) == set(state["step_signatures"].values())
    other = Pipeline("c03", LoadNumbers() >> Upper()).run(out, params={"load_numbers.path": str(b)})
    assert not other.reused and other.kept == 2
    new_state = json.loads((out / STATE_DIR / "state.json").read_text())
    assert new_state["step_signatures"] != state["step_signatures"]
    assert len(_step_dirs(out)) == 4  # both versions of both steps


def test_signature_follows_the_input_file_content(tmp_path: Path) -> None:
    words = tmp_path / "w.txt"
    words.write_text("one two")
    out = tmp_path / "out"

    class Fingerprinted(LoadNumbers):
        def fingerprint(self, base_dir: Path) -> str | None:
            return Path(self.path).read_text()

    Pipeline("fp", Fingerprinted(path=str(words)) >> Upper()).run(out)
    words.write_text("one two three")
    result = Pipeline("fp", Fingerprinted(path=str(words)) >> Upper()).run(out)
    assert not result.reused and result.kept == 3


class Vectors(GeneratorStep):
    n: int = 2000
    dim: int = 256

    def output_columns(self) -> list[str]:
        return ["id", "vec"]

    def generate(self, ctx: Any):
        rng = random.Random(0)
        for start in range(0, self.n, 100):
            yield [{"id": i, "vec": [rng.random() for _ in range(self.dim)]}
                   for i in range(start, min(start + 100, self.n))]


class Embed(Step):
    inputs = ("vec",)
    outputs = ("emb",)

    def process(self, rows, ctx):
        return [{**r, "emb": [round(v * 2, 6) for v in r["vec"]]} for r in rows]


class Norms(GlobalStep):
    inputs = ("emb",)
    outputs = ("norm",)

    def process(self, rows, ctx):
        return [{**r, "norm": sum(v * v for v in r["emb"]) ** 0.5} for r in rows]


def test_c14_checkpoints_cost_new_data_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = Pipeline("c14", Vectors() >> Embed(input_batch_size=100) >> Norms()).run(out)
    assert result.kept == 2000
    dataset = (out / "dataset.jsonl").stat().st_size
    checkpoints = sum(p.stat().st_size for p in (out / STATE_DIR / "steps").rglob("*") if p.is_file())
    # three steps wrote checkpoints, yet each column is stored once: far below 3x the dataset
    assert checkpoints <= 1.5 * dataset, (checkpoints, dataset)
    files = list((out / STATE_DIR / "steps").rglob("*.jsonl"))
    assert max(p.stat().st_size for p in files) < dataset / 2  # no file rewrites everything
    # and the replay rebuilds the full rows
    again = Pipeline("c14", Vectors() >> Embed(input_batch_size=100) >> Norms()).run(out, params={})
    assert again.reused
    (out / STATE_DIR / "state.json").unlink()
    replayed = Pipeline("c14", Vectors() >> Embed(input_batch_size=100) >> Norms()).run(out)
    assert not replayed.reused
    assert (out / "dataset.jsonl").stat().st_size == dataset
