"""Held-out dialogues -> conversation scripts: the user turns to replay, the persona, the reference style.

A dialogue of PersonaChat has 7-17 user turns; to reach ``turns`` assistant turns, the script continues with the user
turns of the following dialogues (a change of topic is part of the stress). Every script is fixed before any model
runs, so every candidate answers the same user turns.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.errors import InputError
from tunewise.records import Example, Message


@dataclass(frozen=True)
class Script:
    """One conversation to replay."""

    id: str
    source: str
    system: list[Message]
    """The system prompt (instructions and persona), kept whatever is truncated."""
    persona: list[str]
    user_turns: list[str]
    reference_turns: list[str]
    """The dialogue's own gold assistant turns: the persona's style (length, register)."""


def dialogue_turns(example: Example) -> tuple[list[str], list[str]]:
    """``(user turns, assistant turns)`` of a dialogue example, the target as its last assistant turn."""
    turns = [m for m in example.messages if m["role"] != "system"]
    users = [m["content"] for m in turns if m["role"] == "user"]
    assistants = [m["content"] for m in turns if m["role"] == "assistant"]
    if isinstance(example.target, str):
        assistants.append(example.target)
    return users, assistants


def build_scripts(examples: list[Example], turns: int) -> list[Script]:
    """One script per example, ``turns`` user turns each: its own, then those of the next dialogues in order.

    Raises:
        InputError: an example has no persona (``meta["persona"]``), or no user turn.
    """
    pool = [dialogue_turns(e) for e in examples]
    scripts = []
    for index, example in enumerate(examples):
        persona = example.meta.get("persona")
        if not persona:
            raise InputError(
                "no persona: the consistency eval needs dialogue rows with a persona (or task.persona_file)",
                file=example.source or None,
                field="persona",
            )
        users, references = pool[index]
        if not users:
            raise InputError("a dialogue without a user turn", file=example.source or None, field="turns")
        replay = list(users)
        step = 1
        while len(replay) < turns:
            replay.extend(pool[(index + step) % len(pool)][0])
            step += 1
        system = [m for m in example.messages if m["role"] == "system"]
        scripts.append(
            Script(example.id, example.source, system, list(persona), replay[:turns], references or list(users))
        )
    return scripts
