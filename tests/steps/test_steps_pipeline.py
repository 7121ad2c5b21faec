"""The text-to-SQL steps composed in a real pipeline on Spider rows (core's local engine)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from fastdistill import Pipeline, Registry


@pytest.fixture
def registry() -> Registry:
    return Registry(env={})


def test_text2sql_chain_end_to_end(
    registry: Registry, text2sql_data: Path, spider_rows: list[dict], tmp_path: Path
) -> None:
    step = registry.step
    answers = {
        0: lambda r: f"<think>count them</think>\n```sql\n{r['gold_sql']};\n```",
        1: lambda r: "SQL: SELECT 1 FROM singer WHERE 0",  # runs, wrong result
        2: lambda r: "DROP TABLE singer;",  # fails the rules
        3: lambda r: "I do not know.",  # no SQL
        4: lambda r: f"Answer: {r['gold_sql']}",
    }
    rows = [
        {**r, "generation": answers[i % 5](r)}
        for i, r in enumerate(r for r in spider_rows if r["db_id"] == "concert_singer")
    ][:30]
    rows.append(dict(rows[0]))  # a duplicate question
    chain = (
        step("load_from_dicts")(name="load", data=rows, batch_size=8)
        >> step("canonicalize")(name="canon", fields=["question"])
        >> step("compute_hash")(name="hash", fields=["question", "db_id"], task_id="t2s")
        >> step("dedup_exact")(name="dedup")
        >> step("sqlite_schema")(name="schema")
        >> step("extract_sql")(name="extract")
        >> step("rule_filter")(name="rules")
        >> step("sqlite_exec_eval")(name="exec", timeout_s=1.0)
        >> step("score_exec")(name="score")
        >> step("quality_gate")(name="gate")
        >> step("export_chat")(name="chat", user_template="{schema}\n\nQ: {question}")
    )
    pipeline = Pipeline("t2s", chain, base_dir=text2sql_data)
    result = pipeline.run(
        tmp_path / "out",
        params={"schema.db_dir": "database", "exec.db_dir": "database"},
        registry=registry,
    )
    reasons = Counter(r["_rejection"]["reason"] for r in result.read_rejected())
    assert reasons == {"duplicate": 1, "exec_mismatch": 6, "rule_failed": 6, "no_sql": 6}
    assert result.kept == 12
    kept = result.read_dataset()
    assert all(r["exec_status"] == "match" and r["score"] == 1.0 for r in kept)
    gates = result.quality["gates"]
    assert gates["exec"]["exec_pass_rate"] == pytest.approx(12 / 18)
    assert gates["gate"]["keep_rate"] == pytest.approx(12 / 18)
    chat = [
        json.loads(line)
        for name in ("train.jsonl", "valid.jsonl")
        for line in (tmp_path / "out" / "mlx" / name).read_text(encoding="utf-8").splitlines()
    ]
    assert len(chat) == 12
    assert all(c["messages"][-1]["role"] == "assistant" for c in chat)
    assert all("CREATE TABLE" in c["messages"][0]["content"] for c in chat)
