"""The instruction pipeline built with the Python API instead of YAML.

    python examples/instructions/run.py [N]
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastdistill import Pipeline
from fastdistill_llms.embedded import EmbeddedLLM
from fastdistill_llms.text_generation import TextGeneration
from fastdistill_steps.canonical import ComputeHash
from fastdistill_steps.dedup import DedupExact
from fastdistill_steps.loaders import LoadJsonl

HERE = Path(__file__).resolve().parent


def main(limit: int) -> None:
    """Answer ``limit`` prompts with the embedded teacher and print where the data went."""
    teacher = TextGeneration(
        template="{prompt}",
        system_prompt="You are a helpful assistant. Answer concisely.",
        reject_truncated=False,
        llm=EmbeddedLLM(generation_kwargs={"max_tokens": 96, "temperature": 0.0}),
    )
    pipeline = Pipeline(
        "instructions-api",
        LoadJsonl(path=str(HERE / "data" / "prompts.jsonl"))
        >> ComputeHash(fields=["prompt"])
        >> DedupExact()
        >> teacher,
    )
    result = pipeline.run(limit=limit)
    print(f"kept {result.kept}, rejected {result.rejected} -> {result.output}")
    print(result.quality["reject_reasons"])


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
