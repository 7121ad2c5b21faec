"""Case C15: no deprecation or user warning from framework internals.

A fresh interpreter with ``-W error::DeprecationWarning -W error::UserWarning`` imports every
package, builds ``load_jsonl >> canonicalize >> compute_hash >> text_generation >> keep_columns``
(an ``openai_compat`` teacher, and an ``embedded`` model built without loading), sets runtime
parameters, dumps and inspects the components, saves the pipeline to YAML, reloads it, and runs
it with the teacher swapped for a ``ScriptedLLM`` (the run writes manifests and reports).  Any
warning is an error there, and nothing may be printed as a warning either.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastdistill_llms", reason="needs fastdistill-llms")
pytest.importorskip("fastdistill_steps", reason="needs fastdistill-steps")

SCRIPT = r'''
import importlib, json, sys, warnings
from pathlib import Path

out = Path(sys.argv[1])
import fastdistill
from fastdistill import Pipeline, Registry
from fastdistill.builtins.steps import KeepColumns
from fastdistill.testing import ScriptedLLM
imported = []
for mod in ("fastdistill_steps", "fastdistill_llms", "fastdistill_cuda", "fastdistill_ray",
            "fastdistill.cli", "fastdistill.cache", "fastdistill.serialization.document"):
    try:
        importlib.import_module(mod)
        imported.append(mod)
    except ModuleNotFoundError as exc:
        if exc.name != mod.split(".")[0]:
            raise
registry = Registry()  # runs every plugin's hooks: every component class is created
assert not registry.load_errors(), [p.error for p in registry.load_errors()]

from fastdistill_llms.embedded import EmbeddedLLM
from fastdistill_llms.openai_compat import OpenAICompatLLM
from fastdistill_llms.text_generation import TextGeneration
from fastdistill_steps.canonical import Canonicalize, ComputeHash
from fastdistill_steps.loaders import LoadJsonl

data = out / "questions.jsonl"
data.write_text("".join(json.dumps({"id": i, "question": f" Question  {i} "}) + "\n"
                        for i in range(5)))
embedded = EmbeddedLLM()  # built, never loaded
embedded.model_dump(); repr(embedded); embedded.identity()
teacher = TextGeneration(
    name="teacher", template="Q: {question}",
    llm=OpenAICompatLLM(model="teacher", generation_kwargs={"max_new_tokens": 32}),
)
pipeline = Pipeline(
    "c15",
    LoadJsonl(name="load")
    >> Canonicalize(name="clean", fields=["question"])
    >> ComputeHash(name="hash", fields=["question"])
    >> teacher
    >> KeepColumns(name="keep", columns=["sample_id", "question", "generation"]),
)
pipeline.set_params({"load.path": str(data), "teacher.llm.base_url": "http://127.0.0.1:9/v1"})
for step in pipeline.steps.values():
    step.model_dump(); step.model_dump_json(); repr(step); type(step).model_json_schema()
    step.model_copy(deep=True)
pipeline.validate(registry)
path = pipeline.save(out / "c15.yaml", registry)
reloaded = Pipeline.load(path, registry)
assert reloaded.to_document(registry) == pipeline.to_document(registry)
assert reloaded.steps["teacher"].llm.base_url == "http://127.0.0.1:9/v1"
reloaded.steps["teacher"].llm = ScriptedLLM(script=lambda m: "answer: " + m[-1]["content"])
result = reloaded.run(out / "run", registry=registry)
assert result.kept == 5, (result.kept, result.rejected)
rows = result.read_dataset()
assert all(r["generation"].startswith("answer: Q: Question") for r in rows), rows
print(json.dumps({"imported": imported, "kept": result.kept}))
'''


def test_build_dump_reload_and_run_raise_no_warning(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-W", "error::UserWarning",
         "-c", SCRIPT, str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Warning" not in proc.stderr, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["kept"] == 5
    assert {"fastdistill_steps", "fastdistill_llms"} <= set(report["imported"])
    for text in ("PydanticDeprecatedSince", "shadows an attribute", "protected namespace"):
        assert text not in proc.stderr + proc.stdout
