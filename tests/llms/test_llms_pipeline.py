"""text_generation + openai_compat inside a whole pipeline run (local engine, reports)."""

from __future__ import annotations

import json

from fastdistill import Pipeline
from fastdistill.builtins.steps import LoadFromDicts
from fastdistill_llms.openai_compat import OpenAICompatLLM
from fastdistill_llms.text_generation import TextGeneration
from llms_fakes import last_user, ok_reply


def test_one_always_malformed_reply_costs_one_row_and_is_reported_c13(fake_openai, tmp_path):
    def script(body, seen):
        if last_user(body) == "Q: q6":
            return 200, {"Content-Type": "application/json"}, b'{"choices": [{"mess'
        if last_user(body) == "Q: q9":
            return ok_reply("")
        return ok_reply("SELECT 1")

    fake_openai.script = script
    llm = OpenAICompatLLM(
        base_url=fake_openai.base_url,
        model="m",
        api_key_env=None,
        max_retries=1,
        backoff_base_s=0.01,
        generation_kwargs={"max_new_tokens": 64},
    )
    rows = [{"id": i, "question": f"q{i}"} for i in range(20)]
    pipe = Pipeline(
        "c13",
        LoadFromDicts(data=rows, batch_size=20)
        >> TextGeneration(llm=llm, template="Q: {question}", input_batch_size=20),
    )
    result = pipe.run(tmp_path / "out")
    assert result.kept == 18 and result.rejected == 2
    quality = json.loads((tmp_path / "out" / "quality_report.json").read_text())
    assert quality["reject_reasons"] == {"provider_error": 1, "empty_output": 1}
    rejected = [
        json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()
    ]
    by_id = {r["id"]: r for r in rejected}
    assert set(by_id) == {6, 9}
    assert by_id[6]["generation"] is None
    assert by_id[6]["generation_meta"]["error_kind"] == "provider_error"
    assert set(by_id[6]["generation_meta"]) == set(by_id[9]["generation_meta"])
    assert all(b["max_tokens"] == 64 for b in fake_openai.requests)  # C07 through the engine
