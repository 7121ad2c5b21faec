"""Classic synthetic-data tasks, with prompts written for this project.

- ``self_instruct``: from a seed instruction, write new, different instructions (after Wang et
  al., *Self-Instruct*, 2022); the answer is parsed as a list, echoes of the seed and duplicates
  are dropped, and an answer with no usable instruction is ``invalid_output``.
- ``evol_instruct``: rewrite an instruction into a harder one with one evolution operation
  (after Xu et al., *WizardLM / Evol-Instruct*, 2023).  The operation is chosen per row from a
  hash of the instruction, so runs are reproducible; answers that echo the input or leak the
  prompt's scaffolding are ``invalid_output`` (the paper's "elimination" step).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastdistill import Generation
from fastdistill.models import Message
from pydantic import Field, field_validator

from fastdistill_llms._task import InvalidOutput, LLMTask

if TYPE_CHECKING:
    from fastdistill import Row

SELF_INSTRUCT_SYSTEM = (
    "You write instructions for training an AI assistant. Given one example instruction, "
    "write {n} new instructions on {criteria}. Each must be self-contained, answerable in "
    "text, and clearly different from the example and from each other. Write one instruction "
    "per line, numbered 1., 2., ... and nothing else."
)
SELF_INSTRUCT_USER = "Example instruction:\n{instruction}\n\nNew instructions:"

#: evolution operations of evol_instruct: name -> what the rewrite must do
EVOLUTIONS: Mapping[str, str] = {
    "add_constraints": "Add one concrete constraint or requirement the answer must satisfy.",
    "deepen": "Ask for deeper understanding: the reasons, trade-offs or edge cases behind it.",
    "concretize": "Replace general concepts with specific, realistic details.",
    "increase_reasoning": "Make it require explicit multi-step reasoning to answer.",
    "breadth": "Write a new instruction in the same domain but on a rarer, more specific topic.",
}
EVOL_SYSTEM = (
    "You rewrite instructions for training an AI assistant to make them more demanding. "
    "Keep the rewritten instruction self-contained, answerable in text, and at most about "
    "40 words longer than the original. Reply with the rewritten instruction only."
)
EVOL_USER = "Operation: {operation}\n\nInstruction:\n{instruction}\n\nRewritten instruction:"
#: scaffolding of our own prompts that must never appear in an answer
_LEAKS = ("operation:", "rewritten instruction", "example instruction", "new instructions:")
_LIST_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\(?\d{1,3}[.):]|instruction\s*\d*\s*[:.-])\s*", re.I)
_LABEL = re.compile(r"^\s*(?:#*\s*)?(?:rewritten|new|evolved)\s+instruction\s*#*\s*:?\s*", re.I)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def parse_instruction_list(text: str, seed: str, limit: int, min_chars: int) -> list[str]:
    """Numbered/bulleted lines of ``text`` as instructions: no seed echo, no duplicates."""
    seen = {_norm(seed)}
    out: list[str] = []
    for line in text.splitlines():
        item = _LIST_ITEM.sub("", line, count=1).strip().strip('"').strip()
        if len(item) < min_chars or item.lower().startswith(_LEAKS):
            continue
        key = _norm(item)
        if key in seen:
            continue
        seen.add(key)
        out.append(item)
        if len(out) == limit:
            break
    return out


class SelfInstruct(LLMTask):
    """Generate ``num_instructions`` new instructions from each row's seed instruction.

    :param input_column: column holding the seed instruction.
    :param num_instructions: how many new instructions to ask for (at most this many are kept).
    :param criteria: what the new instructions should cover (goes in the prompt).
    :param min_chars: shorter lines are not instructions.
    :param output_column: column receiving the list of new instructions.
    """

    component_name = "self_instruct"

    input_column: str = "instruction"
    num_instructions: int = Field(default=3, ge=1, le=50)
    criteria: str = "the same broad domain, varying topic, difficulty and task type"
    min_chars: int = Field(default=12, ge=1)
    output_column: str = "instructions"
    meta_column: str = "self_instruct_meta"
    system_prompt: str | None = SELF_INSTRUCT_SYSTEM

    def input_columns(self) -> list[str]:
        """The seed column."""
        return [self.input_column]

    def result_columns(self) -> list[str]:
        """The list of new instructions."""
        return [self.output_column]

    def format_input(self, row: Row) -> list[Message]:
        """Instructions for the writer (system), the seed (user)."""
        seed = row[self.input_column]
        if not isinstance(seed, str) or not seed.strip():
            raise ValueError(f"{self.input_column} must be non-empty text")
        system = (self.system_prompt or "").format(
            n=self.num_instructions, criteria=self.criteria
        )
        head: list[Message] = [{"role": "system", "content": system}] if system else []
        return [*head, {"role": "user", "content": SELF_INSTRUCT_USER.format(instruction=seed)}]

    def format_output(self, gen: Generation, row: Row) -> dict[str, Any]:
        """The parsed list; ``invalid_output`` when nothing usable came back."""
        items = parse_instruction_list(
            gen.text or "", row[self.input_column], self.num_instructions, self.min_chars
        )
        if not items:
            raise InvalidOutput(f"no new instruction in the answer: {(gen.text or '')[:200]!r}")
        return {self.output_column: items}


class EvolInstruct(LLMTask):
    """Rewrite each row's instruction into a harder one with one evolution operation.

    :param input_column: column holding the instruction.
    :param methods: operations to choose from (keys of :data:`EVOLUTIONS`); each row gets one,
        picked by a hash of its instruction and ``seed``.
    :param seed: changes the per-row choice of operation.
    :param output_column: the rewritten instruction.
    :param method_column: the operation used.
    """

    component_name = "evol_instruct"

    input_column: str = "instruction"
    methods: list[str] = Field(default_factory=lambda: list(EVOLUTIONS))
    seed: int = 0
    output_column: str = "evolved_instruction"
    method_column: str = "evolution_method"
    meta_column: str = "evol_meta"
    system_prompt: str | None = EVOL_SYSTEM

    @field_validator("methods")
    @classmethod
    def _check_methods(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in EVOLUTIONS]
        if unknown or not value:
            raise ValueError(
                f"methods must be a non-empty subset of {sorted(EVOLUTIONS)}; unknown: {unknown}"
            )
        return value

    def input_columns(self) -> list[str]:
        """The instruction column."""
        return [self.input_column]

    def result_columns(self) -> list[str]:
        """The rewritten instruction and the operation used."""
        return [self.output_column, self.method_column]

    def method_for(self, instruction: str) -> str:
        """The operation for ``instruction``: stable across runs and processes."""
        digest = hashlib.sha256(f"{self.seed}\x1f{instruction}".encode()).digest()
        return self.methods[int.from_bytes(digest[:4], "big") % len(self.methods)]

    def format_input(self, row: Row) -> list[Message]:
        """Rewriting rules (system), the operation and the instruction (user)."""
        instruction = row[self.input_column]
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"{self.input_column} must be non-empty text")
        operation = EVOLUTIONS[self.method_for(instruction)]
        user = EVOL_USER.format(operation=operation, instruction=instruction)
        return [*self.system_messages(), {"role": "user", "content": user}]

    def format_output(self, gen: Generation, row: Row) -> dict[str, Any]:
        """The cleaned rewrite; ``invalid_output`` for an echo or leaked scaffolding."""
        original = row[self.input_column]
        text = _LABEL.sub("", (gen.text or "").strip(), count=1).strip().strip('"').strip()
        if not text:
            raise InvalidOutput("the rewrite is empty once its label is removed")
        if _norm(text) == _norm(original):
            raise InvalidOutput("the rewrite repeats the original instruction")
        leaked = [m for m in _LEAKS if m in text.lower()]
        if leaked:
            raise InvalidOutput(f"the rewrite contains the prompt's scaffolding {leaked[0]!r}")
        return {self.output_column: text, self.method_column: self.method_for(original)}
