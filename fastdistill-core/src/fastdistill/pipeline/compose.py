"""Composition with ``>>``: ``a >> b``, ``a >> [b, c] >> d``.

``>>`` builds a :class:`Chain` (steps plus edges) without touching any global state; a
:class:`~fastdistill.pipeline.Pipeline` is then built from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastdistill.step import Step


@dataclass
class Chain:
    """A fragment of a DAG: its steps (in order of appearance), edges, heads and tails."""

    steps: list[Step] = field(default_factory=list)
    edges: list[tuple[Step, Step]] = field(default_factory=list)
    heads: list[Step] = field(default_factory=list)
    tails: list[Step] = field(default_factory=list)

    def __rshift__(self, other: Any) -> Chain:
        return connect(self, other)

    def __rrshift__(self, other: Any) -> Chain:
        return connect(other, self)


def as_chain(obj: Any) -> Chain:
    """A step, a list of steps/chains, or a chain, as a :class:`Chain`."""
    if isinstance(obj, Chain):
        return obj
    if isinstance(obj, Step):
        return Chain(steps=[obj], heads=[obj], tails=[obj])
    if isinstance(obj, (list, tuple)):
        out = Chain()
        for item in obj:
            sub = as_chain(item)
            _merge(out, sub)
            out.heads.extend(sub.heads)
            out.tails.extend(sub.tails)
        return out
    raise TypeError(f"cannot connect {type(obj).__name__!r}: use steps, lists of steps or chains")


def _merge(into: Chain, other: Chain) -> None:
    for s in other.steps:
        if not any(s is t for t in into.steps):
            into.steps.append(s)
    for e in other.edges:
        if not any(e[0] is f[0] and e[1] is f[1] for f in into.edges):
            into.edges.append(e)


def connect(left: Any, right: Any) -> Chain:
    """``left >> right``: every tail of ``left`` feeds every head of ``right``."""
    a, b = as_chain(left), as_chain(right)
    out = Chain()
    _merge(out, a)
    _merge(out, b)
    for t in a.tails:
        for h in b.heads:
            if not any(t is e[0] and h is e[1] for e in out.edges):
                out.edges.append((t, h))
    out.heads = list(a.heads)
    out.tails = list(b.tails)
    return out
