"""Keep a conversation inside the model's context: drop the oldest exchanges, never the system prompt (persona)."""

from __future__ import annotations

from collections.abc import Callable

from tunewise.errors import InputError
from tunewise.records import Message

TEMPLATE_TOKENS_PER_MESSAGE = 5
"""Role header and end-of-turn tokens a chat template adds around each message (ChatML: ``<|im_start|>role\\n``...)."""


class TokenCounter:
    """Tokens of message contents under a backend's tokenizer, each distinct text counted once."""

    def __init__(self, count: Callable[[str], int]) -> None:
        self._count = count
        self._cache: dict[str, int] = {}

    def __call__(self, message: Message) -> int:
        text = message["content"]
        if text not in self._cache:
            self._cache[text] = self._count(text)
        return self._cache[text] + TEMPLATE_TOKENS_PER_MESSAGE


def fit_context(
    messages: list[Message], budget: int, count: Callable[[Message], int], *, where: str
) -> tuple[list[Message], int]:
    """``messages`` without their oldest user/assistant exchanges until the rest fits in ``budget`` tokens.

    Returns:
        ``(messages kept, exchanges dropped)``; the system messages and the last user turn are always kept.

    Raises:
        InputError: the system prompt and the last user turn alone exceed the budget (``where`` names the turn).
    """
    system = [m for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    fixed = sum(count(m) for m in system) + count(turns[-1])
    if fixed > budget:
        raise InputError(
            f"the system prompt and this user turn take {fixed} tokens, over the context budget of {budget}",
            field=where,
        )
    sizes = [count(m) for m in turns[:-1]]
    total, dropped = fixed + sum(sizes), 0
    while total > budget:
        total -= sizes[2 * dropped] + sizes[2 * dropped + 1]
        dropped += 1
    return [*system, *turns[2 * dropped :]], dropped
