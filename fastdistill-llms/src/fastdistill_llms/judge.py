"""``llm_judge``: grade each row against a rubric -> numeric ``score`` and ``rationale``.

The judge is asked for JSON (``{"score": ..., "rationale": ...}``), but real models answer in
many shapes; :func:`parse_judgment` accepts JSON (also inside a code fence or prose),
``Score: 7/10``, ``Rating - 8``, ``7/10`` and a bare number.  An answer with no score, a score
out of the scale, or a score on another scale (``4/5`` when the scale is 1-10) is never guessed:
the row is rejected ``invalid_output``.  With ``threshold`` the judge is also a gate (rows
below it are rejected ``low_score`` and keep their score); either way its score statistics
(``score_mean``/``score_min``/``score_max``) appear in the quality report.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any, ClassVar

from fastdistill import Generation, Reason
from fastdistill.models import Message
from pydantic import Field, model_validator

from fastdistill_llms._task import (
    InvalidOutput,
    LLMTask,
    fill_template,
    RejectRow,
    template_columns,
)

if TYPE_CHECKING:
    from fastdistill import Row, StepContext

DEFAULT_RUBRIC = (
    "Judge how well the response fulfils the instruction: correctness first, then "
    "completeness, then clarity. A wrong or harmful answer scores the minimum."
)
DEFAULT_TEMPLATE = "Instruction:\n{instruction}\n\nResponse:\n{generation}"
SYSTEM_PROMPT = (
    "You are a strict, impartial grader of answers written by an AI assistant.\n"
    "Rubric: {rubric}\n"
    "Give an integer score from {lo:g} (worst) to {hi:g} (best).\n"
    'Reply with JSON only: {{"rationale": "<one or two sentences>", "score": <number>}}'
)
#: counters holding the score histogram (additive, so replicas' metrics merge exactly)
HIST_PREFIX = "score_hist."

_NUM = r"[-+]?\d+(?:\.\d+)?"
_LABELLED = re.compile(
    rf"(?:score|rating|grade)\W{{0,3}}(?:is|of|=|:|-)?\s*\**\s*({_NUM})"
    rf"(?:\s*(?:/|out of)\s*({_NUM}))?",
    re.IGNORECASE,
)
_FRACTION = re.compile(rf"({_NUM})\s*(?:/|out of)\s*({_NUM})", re.IGNORECASE)
_SCORE_KEYS = ("score", "rating", "grade")
_RATIONALE_KEYS = ("rationale", "reasoning", "reason", "explanation", "justification", "feedback")


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object embedded in ``text`` (a fenced block, the whole text, or a ``{...}``)."""
    found: list[dict[str, Any]] = []
    decoder = json.JSONDecoder()
    for start in [m.start() for m in re.finditer(r"\{", text)]:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(obj, dict):
            found.append(obj)
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(rf"\s*({_NUM})\s*(?:/\s*({_NUM}))?\s*", value)
        if m:
            return float(m.group(1)) if not m.group(2) else float(m.group(1)) / float(m.group(2))
    return None


def parse_judgment(text: str, lo: float, hi: float) -> tuple[float, str]:
    """``(score, rationale)`` from a judge's answer on the ``lo``..``hi`` scale.

    :raises InvalidOutput: no score, a score on another scale, or a score out of range.
    """
    score: float | None = None
    denominator: float | None = None
    rationale = ""
    for obj in _json_objects(text):
        lowered = {str(k).lower(): v for k, v in obj.items()}
        key = next((k for k in _SCORE_KEYS if k in lowered), None)
        if key is None:
            continue
        raw = lowered[key]
        m = re.fullmatch(rf"\s*({_NUM})\s*/\s*({_NUM})\s*", raw) if isinstance(raw, str) else None
        score = float(m.group(1)) if m else _number(raw)
        denominator = float(m.group(2)) if m else None
        if score is None:
            raise InvalidOutput(f"judge's JSON has a non-numeric {key}: {raw!r}")
        rationale = next((str(lowered[k]) for k in _RATIONALE_KEYS if k in lowered), "")
        break
    if score is None:
        labelled = list(_LABELLED.finditer(text))
        fractions = list(_FRACTION.finditer(text))
        match = labelled[-1] if labelled else (fractions[-1] if fractions else None)
        if match is not None:
            score = float(match.group(1))
            denominator = float(match.group(2)) if match.group(2) else None
            rationale = (text[: match.start()] + text[match.end() :]).strip(" \n\t.:-*")
        else:
            bare = re.fullmatch(rf"\s*\**({_NUM})\**\s*\.?\s*(?:\n(.*))?", text, re.DOTALL)
            if bare is None:
                raise InvalidOutput(f"no score found in the judge's answer: {_snippet(text)}")
            score, rationale = float(bare.group(1)), (bare.group(2) or "").strip()
    if denominator is not None and denominator != hi:
        raise InvalidOutput(
            f"score {score:g}/{denominator:g} is not on the {lo:g}-{hi:g} scale: {_snippet(text)}"
        )
    if math.isnan(score) or not lo <= score <= hi:
        raise InvalidOutput(f"score {score:g} is outside {lo:g}-{hi:g}: {_snippet(text)}")
    return score, re.sub(r"\s+", " ", rationale).strip()


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


class LLMJudge(LLMTask):
    """Ask ``llm`` to grade each row; writes ``score`` (a number) and ``rationale``.

    :param template: what the judge sees, a format string over row columns (default: the
        ``instruction`` and the ``generation`` to grade).
    :param rubric: the grading criteria, put in the judge's system prompt.
    :param scale_min: lowest score of the scale.
    :param scale_max: highest score of the scale.
    :param threshold: when set, rows scoring below it are rejected ``low_score`` (keeping their
        score and rationale); when ``None``, every graded row is kept and a later
        ``quality_gate`` on ``score`` may decide.
    :param system_prompt: replaces the default grading instructions (``{rubric}``, ``{lo}``,
        ``{hi}`` are filled in).

    Metrics (quality report ``gates``): ``judged``, ``score_mean``, ``score_min``,
    ``score_max`` and ``below_threshold``.
    """

    component_name = "llm_judge"
    is_gate: ClassVar[bool] = True

    template: str = Field(default=DEFAULT_TEMPLATE, min_length=1)
    rubric: str = Field(default=DEFAULT_RUBRIC, min_length=1)
    scale_min: float = 1.0
    scale_max: float = 10.0
    threshold: float | None = None
    system_prompt: str | None = SYSTEM_PROMPT
    score_column: str = "score"
    rationale_column: str = "rationale"
    meta_column: str = "judge_meta"

    @model_validator(mode="after")
    def _check(self) -> LLMJudge:
        template_columns(self.template)  # positional fields are an error
        if not self.scale_min < self.scale_max:
            raise ValueError(f"scale_min {self.scale_min} must be < scale_max {self.scale_max}")
        if self.threshold is not None and not self.scale_min <= self.threshold <= self.scale_max:
            raise ValueError(f"threshold {self.threshold} is outside the scale")
        return self

    def input_columns(self) -> list[str]:
        """The columns the template uses."""
        return template_columns(self.template)

    def result_columns(self) -> list[str]:
        """Score and rationale."""
        return [self.score_column, self.rationale_column]

    def format_input(self, row: Row) -> list[Message]:
        """Grading instructions (system) and the filled template (user)."""
        prompt = fill_template(self.template, row)
        system = (self.system_prompt or "").format(
            rubric=self.rubric, lo=self.scale_min, hi=self.scale_max
        )
        head: list[Message] = [{"role": "system", "content": system}] if system else []
        return [*head, {"role": "user", "content": prompt}]

    def format_output(self, gen: Generation, row: Row) -> dict[str, Any]:
        """Parse the score; reject below ``threshold`` with the score kept."""
        score, rationale = parse_judgment(gen.text or "", self.scale_min, self.scale_max)
        value: float | int = int(score) if score.is_integer() else score
        columns = {self.score_column: value, self.rationale_column: rationale}
        if self.threshold is not None and score < self.threshold:
            detail = f"{self.score_column}={value} < threshold={self.threshold:g}"
            raise RejectRow(Reason.LOW_SCORE.value, detail, columns)
        return columns

    def observe_output(self, columns: dict[str, Any], ctx: StepContext) -> None:
        """Count the score in the histogram that :meth:`summarize_metrics` reads."""
        score = columns[self.score_column]
        ctx.metrics.incr("judged")
        ctx.metrics.incr(f"{HIST_PREFIX}{score:g}")
        ctx.metrics.observe("score", score)
        if self.threshold is not None and score < self.threshold:
            ctx.metrics.incr("below_threshold")

    @classmethod
    def summarize_metrics(cls, metrics: dict[str, Any]) -> dict[str, Any]:
        """Judge score statistics from the histogram counters: mean, min, max."""
        hist = {
            float(k[len(HIST_PREFIX) :]): v for k, v in metrics.items() if k.startswith(HIST_PREFIX)
        }
        n = sum(hist.values())
        if not n:
            return {"judged": 0, "score_mean": None, "score_min": None, "score_max": None}
        return {
            "judged": int(n),
            "score_mean": round(sum(s * c for s, c in hist.items()) / n, 6),
            "score_min": min(hist),
            "score_max": max(hist),
        }
