"""A judge model asked whether a reply contradicts the persona: one yes/no per reply, greedy, three tokens."""

from __future__ import annotations

from tunewise.models.base import Backend, GenerationConfig
from tunewise.records import Message

_SYSTEM = "You check whether a chat reply is consistent with the speaker's persona."


def judge_messages(persona: list[str], reply: str) -> list[Message]:
    facts = "\n".join(f"- {line}" for line in persona)
    question = (
        f'Persona of the speaker:\n{facts}\n\nThe speaker\'s reply: "{reply}"\n\n'
        "Does the reply contradict any line of the persona? Answer with one word: yes or no."
    )
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": question}]


def contradicts(text: str) -> float:
    """1.0 for an answer starting with yes, else 0.0 (a judge that says neither is counted as no contradiction)."""
    return 1.0 if text.strip().lower().lstrip("\"'*").startswith("yes") else 0.0


def judge_replies(backend: Backend, pairs: list[tuple[list[str], str]], batch_size: int) -> list[float]:
    """The judge's verdict (1: contradicts) for each ``(persona, reply)``."""
    if not pairs:
        return []
    config = GenerationConfig(max_new_tokens=3, batch_size=batch_size)
    completions = backend.generate([judge_messages(p, r) for p, r in pairs], config)
    return [contradicts(c.text) for c in completions]
