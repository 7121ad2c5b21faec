"""The input rows of a batch as they were before a step ran: what its checkpoint delta is
computed against (a step may change its input rows in place).

Rows shaped alike (the usual case) are kept as tuples of their values, which costs less than
copying each row, and a step that only added columns is recognised in C loops: its checkpoint
record is the new columns, stored columnar.  Anything else is compared row by row through
:meth:`Snapshot.get`, which rebuilds the rows as dicts.
"""

from __future__ import annotations

from itertools import repeat
from operator import itemgetter
from typing import Any

from fastdistill.rows import ROW_ID, Row

_ROW_ID_OF = itemgetter(ROW_ID)


class Snapshot:
    """The values of a batch's input rows, taken before the step runs."""

    __slots__ = ("_dicts", "_getter", "_ids", "_names", "_values")

    def __init__(self, rows: list[Row]) -> None:
        self._dicts: dict[Any, Row] | None = None
        self._names: tuple[str, ...] = ()
        self._getter: Any = None
        self._ids: list[Any] = []
        self._values: list[Any] = []
        shape = rows[0].keys() if rows and isinstance(rows[0], dict) else None
        if shape is not None and len(shape) >= 2 and ROW_ID in shape:
            # rows of the same length that all have the first row's keys have its key set
            getter = itemgetter(*shape)
            try:
                if list(map(len, rows)).count(len(shape)) == len(rows):
                    self._values = list(map(getter, rows))
                    self._names, self._getter = tuple(shape), getter
                    self._ids = list(map(_ROW_ID_OF, rows))
            except (KeyError, TypeError):  # another shape, or a row that is not a dict
                self._values = []
                self._names, self._getter = (), None
        if self._getter is None:  # rows of several shapes: plain copies, by id
            self._dicts = {r[ROW_ID]: dict(r) for r in rows if ROW_ID in r}

    def _by_id(self) -> dict[Any, Row]:
        if self._dicts is None:
            names = self._names
            self._dicts = dict(zip(self._ids, map(dict, map(zip, repeat(names), self._values)),
                                   strict=True))
        return self._dicts

    def get(self, rid: Any, default: Row | None = None) -> Row | None:
        """The input row with id ``rid`` as it was (a new dict), or ``default``."""
        return self._by_id().get(rid, default)

    def __getitem__(self, rid: Any) -> Row:
        return self._by_id()[rid]

    def columnar(self, kept: list[Row], keep: tuple[str, ...]) -> dict[str, Any] | None:
        """The checkpoint record of ``kept`` when they are the input rows, in order, shaped
        alike, with every input column still there and unchanged: their new columns (and the
        state columns ``keep``), columnar.  ``None`` when that does not hold."""
        if self._getter is None or len(kept) != len(self._ids) or not kept:
            return None
        out_keys = kept[0].keys()
        names = self._names
        seen = set(names)
        new = [k for k in out_keys if k not in seen]
        try:
            # same length + every input column + every new column = the first row's key set
            if not (
                all(map(out_keys.__contains__, names))
                and list(map(len, kept)).count(len(out_keys)) == len(kept)
                and list(map(_ROW_ID_OF, kept)) == self._ids
                and list(map(self._getter, kept)) == self._values
            ):
                return None
            cols = {k: list(map(itemgetter(k), kept)) for k in out_keys
                    if k != ROW_ID and (k in new or k in keep)}
        except (KeyError, TypeError):  # a row without a column, or not a dict
            return None
        return {"ids": list(self._ids), "cols": cols}
