"""``import fastdistill`` is cheap: no heavy library and no plugin is imported."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("torch", "pyarrow", "datasets", "transformers", "httpx", "aiohttp", "rich", "yaml",
             "xllamacpp")

SCRIPT = """
import json, sys
import fastdistill
forbidden = set(json.loads(sys.argv[1]))
loaded = sorted(
    m for m in sys.modules
    if m.split(".")[0] in forbidden or m.startswith("fastdistill_")
)
print(json.dumps({"loaded": loaded, "version": fastdistill.__version__}))
"""


def test_import_fastdistill_imports_nothing_heavy() -> None:
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", SCRIPT, json.dumps(FORBIDDEN)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["loaded"] == []
    assert report["version"]


def test_discovering_plugins_stays_cheap() -> None:
    """Building a core-only registry imports neither heavy libraries nor the CLI's console."""
    script = SCRIPT.replace(
        "import fastdistill\n",
        "import fastdistill\nfastdistill.Registry(env={'FASTDISTILL_LOAD_PLUGINS': ''})\n",
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, json.dumps(FORBIDDEN)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["loaded"] == []


def test_a_pipeline_without_llm_tasks_opens_no_response_cache(tmp_path: object) -> None:
    """Row steps only: the run opens no response cache (nothing asks a model)."""
    script = (
        "import json, sys\n"
        "from fastdistill import Pipeline\n"
        "from fastdistill.builtins.steps import KeepColumns, LoadFromDicts\n"
        "rows = [{'id': i, 'text': 't'} for i in range(10)]\n"
        "p = Pipeline('rows', LoadFromDicts(data=rows) >> KeepColumns(columns=['id']))\n"
        "r = p.run(sys.argv[1])\n"
        "print(json.dumps({'kept': r.kept, 'loaded': sorted(m for m in sys.modules\n"
        "    if m in ('sqlite3', 'fastdistill.cache.llm_cache'))}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"kept": 10, "loaded": []}
