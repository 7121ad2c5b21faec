"""Lexical helpers for SQL text: mask literals and comments, split statements, find keywords."""

from __future__ import annotations

import re

_CLOSERS = {"'": "'", '"': '"', "`": "`", "[": "]"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def mask(sql: str, *, identifiers: bool = True) -> str:
    """``sql`` with string literals, quoted identifiers and comments replaced by spaces.

    The result has the same length as ``sql``, so positions map back.  Quote characters stay in
    place (``'   '``) so token boundaries are kept.  ``identifiers=False`` keeps the contents of
    ``"..."``, `` `...` `` and ``[...]``.
    """
    out = list(sql)
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
        elif c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out[i:end] = " " * (end - i)
            i = end
        elif c in _CLOSERS:
            close = _CLOSERS[c]
            j = i + 1
            while j < n:
                if sql[j] == close:
                    if close != "]" and j + 1 < n and sql[j + 1] == close:
                        j += 2  # doubled quote: an escaped quote inside the literal
                        continue
                    break
                j += 1
            if c == "'" or identifiers:
                out[i + 1 : j] = " " * (j - i - 1)
            i = j + 1
        else:
            i += 1
    return "".join(out)


def split_statements(sql: str) -> list[str]:
    """The non-empty statements of ``sql`` (split at ``;`` outside literals and comments)."""
    masked = mask(sql)
    parts: list[str] = []
    start = 0
    for i, ch in enumerate(masked):
        if ch == ";":
            parts.append(sql[start:i])
            start = i + 1
    parts.append(sql[start:])
    return [p.strip() for p in parts if mask(p).strip()]


def keywords(sql: str) -> list[str]:
    """Upper-cased words outside literals, quoted identifiers and comments, in order."""
    return [m.group(0).upper() for m in _WORD.finditer(mask(sql))]


def first_keyword(sql: str) -> str | None:
    """The first word of the statement (``SELECT``, ``WITH``, ``INSERT`` ...), or ``None``."""
    words = keywords(sql)
    return words[0] if words else None


def has_top_level_order_by(sql: str) -> bool:
    """Whether the outermost query sorts its result (``ORDER BY`` outside parentheses)."""
    masked = mask(sql)
    depth = 0
    top = []
    for ch in masked:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        top.append(ch if depth == 0 and ch != ")" else " ")
    return re.search(r"\bORDER\s+BY\b", "".join(top), re.IGNORECASE) is not None
