"""Fixtures for fastdistill-steps tests: the real Spider text-to-SQL data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA_CANDIDATES = (
    REPO / "examples" / "text2sql" / "data",
    REPO.parent / "shared" / "data" / "text2sql",
)


@pytest.fixture(scope="session")
def text2sql_data() -> Path:
    """Folder with ``spider_dev_subset.jsonl`` and ``database/<db_id>/<db_id>.sqlite``."""
    for candidate in DATA_CANDIDATES:
        if (candidate / "database").is_dir():
            return candidate
    pytest.skip(
        "Spider text2sql data not found; looked in "
        + " and ".join(str(c) for c in DATA_CANDIDATES)
    )


@pytest.fixture(scope="session")
def db_dir(text2sql_data: Path) -> Path:
    """The Spider databases folder."""
    return text2sql_data / "database"


@pytest.fixture(scope="session")
def spider_rows(text2sql_data: Path) -> list[dict]:
    """The Spider dev subset rows (id, db_id, question, gold_sql, gold_row_count)."""
    path = text2sql_data / "spider_dev_subset.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
