"""The ``persona:`` section: how the turn-by-turn consistency eval runs (``tunewise persona``, decide's probe)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from tunewise.config.base import Strict

DEFAULT_PROBES = (
    "tell me a bit about yourself.",
    "what should i know about you?",
)


class PersonaSpec(Strict):
    """A conversation replayed turn by turn, the model answering on top of its own earlier answers, probed at fixed
    turns with questions about itself; each probe answer is scored against the persona."""

    candidates: list[str] | None = None
    """Candidate names to run (default: every zero-shot candidate of the spec)."""
    conversations: int = Field(48, ge=2)
    """Held-out dialogues replayed (the first ones of the dev split in a fixed spread order)."""
    turns: int = Field(30, ge=1)
    """Assistant turns per conversation; user turns continue from other dialogues once a dialogue runs out."""
    probe_turns: list[int] = Field(default_factory=lambda: [1, 5, 10, 15, 20, 25, 30])
    """The turns at which the model is asked about itself (turn t: after t-1 exchanges of the conversation)."""
    probes: list[str] = Field(default_factory=lambda: list(DEFAULT_PROBES), min_length=1)
    """The questions a probe asks, each in its own branch (never added to the conversation)."""
    distractors: int = Field(9, ge=1)
    """Other personas a probe answer must be told apart from (identifiability is hits@1 among distractors + 1)."""
    max_new_tokens: int = Field(48, ge=1)
    """Per assistant turn; PersonaChat turns are under 20 words."""
    judge: str | None = None
    """A model of the spec (an OpenAI-compatible endpoint, or the embedded model) asked whether each probe answer
    contradicts a persona line; none: no contradiction rate."""
    margin: float = Field(0.05, gt=0, lt=1)
    """A drop from turn 1 smaller than this counts as holding the persona (non-inferiority margin)."""
    seed: int = 0

    @field_validator("probe_turns")
    @classmethod
    def _sorted_turns(cls, turns: list[int]) -> list[int]:
        if not turns or any(t < 1 for t in turns):
            raise ValueError("probe_turns must be a non-empty list of turns >= 1")
        return sorted(set(turns))

    @model_validator(mode="after")
    def _probes_within_turns(self) -> PersonaSpec:
        if self.probe_turns[-1] > self.turns:
            raise ValueError(f"probe turn {self.probe_turns[-1]} is past the last turn ({self.turns})")
        if self.distractors >= self.conversations:
            raise ValueError(
                f"{self.distractors} distractors need more than {self.distractors} conversations (their personas)"
            )
        return self
