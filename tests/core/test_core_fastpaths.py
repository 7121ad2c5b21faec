"""The engine's C-loop fast paths give exactly what the row-by-row paths give, including for
rows that only look alike (same length, other keys)."""

from __future__ import annotations

from typing import Any

from fastdistill import ROW_ID, StepContext, StorageBackend
from fastdistill.builtins.steps import KeepColumns
from fastdistill.engine.checkpoint import _delta, _kept_records
from fastdistill.engine.codec import loads
from fastdistill.engine.collect import _public_lines, _row_sort_key, _sort_keys
from fastdistill.engine.snapshot import Snapshot


def rows(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "text": f"t{i}", ROW_ID: f"load:{i}"} for i in range(n)]


def expand(recs: list[dict[str, Any]], before: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Rebuild each kept row from its record and its input row (what resume does)."""
    out: dict[str, Any] = {}
    for rec in recs:
        if "ids" in rec:
            for i, rid in enumerate(rec["ids"]):
                row = dict(before[rid])
                for k in rec.get("drop", []):
                    row.pop(k, None)
                row.update({k: col[i] for k, col in rec["cols"].items()})
                out[rid] = row
        elif "delta" in rec:
            rid = rec["delta"][ROW_ID]
            row = {k: v for k, v in before[rid].items() if k not in rec.get("drop", [])}
            row.update(rec["delta"])
            out[rid] = row
        else:
            out[rec["row"][ROW_ID]] = rec["row"]
    return out


def test_added_columns_are_one_columnar_record() -> None:
    batch = rows(20)
    snap = Snapshot(batch)
    before = {r[ROW_ID]: dict(r) for r in batch}
    for r in batch:
        r["n"] = len(r["text"])  # in place, as steps may
    recs = _kept_records(batch, snap, ())
    assert len(recs) == 1 and list(recs[0]["cols"]) == ["n"]
    assert expand(recs, before) == {r[ROW_ID]: r for r in batch}


def test_in_place_change_of_an_input_column_is_recorded() -> None:
    batch = rows(20)
    snap = Snapshot(batch)
    before = {r[ROW_ID]: dict(r) for r in batch}
    for r in batch:
        r["n"] = 1
    batch[7]["text"] = "changed"  # one row changed an existing column
    recs = _kept_records(batch, snap, ())
    assert expand(recs, before) == {r[ROW_ID]: r for r in batch}
    assert any("delta" in rec and rec["delta"].get("text") == "changed" for rec in recs)


def test_same_length_other_keys_is_not_taken_for_the_same_shape() -> None:
    batch = rows(20)
    snap = Snapshot(batch)
    before = {r[ROW_ID]: dict(r) for r in batch}
    for r in batch:
        r["n"] = 1
    del batch[3]["n"]
    batch[3]["m"] = 2  # same number of keys, another key
    recs = _kept_records(batch, snap, ())
    assert expand(recs, before) == {r[ROW_ID]: r for r in batch}
    # dropped input column, same length: the row records the drop
    batch2 = rows(20)
    snap2 = Snapshot(batch2)
    before2 = {r[ROW_ID]: dict(r) for r in batch2}
    del batch2[5]["text"]
    batch2[5]["other"] = "x"
    assert expand(_kept_records(batch2, snap2, ()), before2) == {r[ROW_ID]: r for r in batch2}


def test_snapshot_of_mixed_shapes_and_state_columns() -> None:
    batch = rows(12)
    batch[4]["extra"] = True  # another shape in the batch
    snap = Snapshot(batch)
    before = {r[ROW_ID]: dict(r) for r in batch}
    assert snap.get("load:4") == before["load:4"] and snap.get("nope") is None
    for r in batch:
        r["seen"] = 1
    assert expand(_kept_records(batch, snap, ("id",)), before) == {r[ROW_ID]: r for r in batch}
    uniform = rows(12)
    snap = Snapshot(uniform)
    for r in uniform:
        r["seen"] = 1
    rec = snap.columnar(uniform, ("id",))  # state columns are always stored
    assert rec is not None and set(rec["cols"]) == {"seen", "id"}
    assert _delta(uniform[0], snap.get("load:0"), ())["delta"] == {"seen": 1, ROW_ID: "load:0"}


def test_public_lines_strip_private_columns_whatever_the_shapes() -> None:
    batch = rows(10)
    batch[2] = {"id": 2, "_other": "x", ROW_ID: "load:2"}  # same length, another shape
    expected = [{k: v for k, v in r.items() if not k.startswith("_")} for r in batch]
    assert [loads(line) for line in _public_lines(batch)] == expected
    big = [{"id": 2**70, "t": "x", ROW_ID: "a:1"}]  # only the stdlib writes this integer
    assert _public_lines(big)[0] == b'{"id": 1180591620717411303424, "t": "x"}'


def test_sort_keys_match_the_row_by_row_key() -> None:
    odd = [{ROW_ID: "load:10"}, {ROW_ID: "a:b:2"}, {ROW_ID: "x:-1"}, {ROW_ID: "plain"},
           {ROW_ID: 7}, {}]
    assert _sort_keys(odd) == [_row_sort_key(r) for r in odd]
    assert _sort_keys(rows(3)) == [("load", 0), ("load", 1), ("load", 2)]


def test_keep_columns_fast_path_equals_row_by_row(tmp_path: Any) -> None:
    ctx = StepContext(run_id="r", step_name="keep", storage=StorageBackend(tmp_path))
    step = KeepColumns(columns=["text", "id"])
    batch = rows(10)
    batch[6] = {"id": 6, "_x": 1, ROW_ID: "load:6"}  # same length as the others, no "text"
    out = list(step.process(batch, ctx))
    assert out[0] == {ROW_ID: "load:0", "text": "t0", "id": 0}
    assert out[6] == {"_x": 1, ROW_ID: "load:6", "text": None, "id": 6}
    assert [list(r) for r in out[:2]] == [[ROW_ID, "text", "id"]] * 2
