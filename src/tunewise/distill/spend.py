"""The spend cap: every teacher call is priced at its worst case before it is sent, and settled at its real cost.

A call's worst case is bounded without the remote tokenizer: byte-level BPE tokenizers (GPT, Llama, Qwen...) never
produce more tokens than the text has UTF-8 bytes, plus a few per message for the chat template; the completion is
bounded by ``max_tokens``. Reserving that bound before each call means the cap can never be exceeded, however many
calls are in flight; settling at the ``usage`` the endpoint reports gives the real spend.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tunewise.errors import InputError
from tunewise.records import Message

TEMPLATE_TOKENS_PER_MESSAGE = 8
"""Role markers and separators of a chat template, per message (ChatML uses 4-5)."""
TEMPLATE_TOKENS_PER_REQUEST = 16


@dataclass(frozen=True)
class Prices:
    """US dollars per 1M prompt and completion tokens (``None``: a self-hosted teacher, priced by machine time)."""

    usd_in_per_1m: float
    usd_out_per_1m: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.usd_in_per_1m + completion_tokens * self.usd_out_per_1m) / 1e6


def prompt_token_bound(conversation: list[Message]) -> int:
    """An upper bound on the prompt tokens of ``conversation`` under any byte-level BPE tokenizer."""
    content = sum(len(m.get("content", "").encode("utf-8")) for m in conversation)
    return content + TEMPLATE_TOKENS_PER_MESSAGE * len(conversation) + TEMPLATE_TOKENS_PER_REQUEST


@dataclass(frozen=True)
class Reservation:
    tokens: int
    usd: float


class CapReached(Exception):
    """The next call could exceed the spend cap: nothing more is sent."""


class SpendLedger:
    """What the teacher calls of one run cost, and what those in flight may still cost, against the caps."""

    def __init__(
        self, prices: Prices | None, *, max_usd: float | None, max_tokens: int | None, max_new_tokens: int
    ) -> None:
        if max_usd is not None and prices is None:
            raise InputError(
                "a dollar cap needs the teacher's prices: set price_in_per_1m and price_out_per_1m on its model "
                "(a self-hosted teacher costs machine time; cap its tokens with max_tokens)",
                field="distill.max_usd",
            )
        self.prices = prices
        self.max_usd = max_usd
        self.max_tokens = max_tokens
        self.max_new_tokens = max_new_tokens
        self.usd = 0.0
        self.tokens = 0
        self.calls = 0
        self._reserved_usd = 0.0
        self._reserved_tokens = 0
        self._lock = threading.Lock()

    def restore(self, usd: float, tokens: int, calls: int) -> None:
        """Count what earlier passes of the same run paid (the caps span a run's resumptions)."""
        with self._lock:
            self.usd, self.tokens, self.calls = usd, tokens, calls

    def bound(self, conversation: list[Message]) -> Reservation:
        """The most one call on ``conversation`` can cost."""
        prompt = prompt_token_bound(conversation)
        usd = self.prices.cost(prompt, self.max_new_tokens) if self.prices else 0.0
        return Reservation(prompt + self.max_new_tokens, usd)

    def check_affordable(self, conversations: list[list[Message]]) -> None:
        """Refuse, before any call, caps below the worst case of the cheapest call.

        Raises:
            InputError: not even one call fits under ``max_usd`` or ``max_tokens``.
        """
        if not conversations:
            return
        cheapest = min((self.bound(c) for c in conversations), key=lambda r: (r.usd, r.tokens))
        if self.max_usd is not None and cheapest.usd > self.max_usd:
            raise InputError(
                f"the spend cap ${self.max_usd:g} is below the worst case of the cheapest call (${cheapest.usd:.6f}: "
                f"{cheapest.tokens - self.max_new_tokens} prompt tokens at most + {self.max_new_tokens} completion "
                "tokens): raise it or lower eval.max_new_tokens",
                field="distill.max_usd",
            )
        if self.max_tokens is not None and cheapest.tokens > self.max_tokens:
            raise InputError(
                f"the token cap {self.max_tokens:,} is below the worst case of the cheapest call "
                f"({cheapest.tokens:,} tokens)",
                field="distill.max_tokens",
            )

    def reserve(self, conversation: list[Message]) -> Reservation:
        """Set aside the worst case of one call.

        Raises:
            CapReached: the call could take the spend past a cap.
        """
        bound = self.bound(conversation)
        with self._lock:
            if self.max_usd is not None and self.usd + self._reserved_usd + bound.usd > self.max_usd:
                raise CapReached(f"spend cap ${self.max_usd:g} reached (spent ${self.usd:.4f})")
            if self.max_tokens is not None and self.tokens + self._reserved_tokens + bound.tokens > self.max_tokens:
                raise CapReached(f"token cap {self.max_tokens:,} reached (used {self.tokens:,})")
            self._reserved_usd += bound.usd
            self._reserved_tokens += bound.tokens
        return bound

    def settle(self, reservation: Reservation, prompt_tokens: int | None, completion_tokens: int | None) -> float:
        """Replace a reservation by the call's real cost (``None`` tokens: the call failed and cost nothing).

        Returns:
            The call's cost in dollars.
        """
        cost = 0.0
        with self._lock:
            self._reserved_usd -= reservation.usd
            self._reserved_tokens -= reservation.tokens
            if prompt_tokens is not None and completion_tokens is not None:
                cost = self.prices.cost(prompt_tokens, completion_tokens) if self.prices else 0.0
                self.usd += cost
                self.tokens += prompt_tokens + completion_tokens
                self.calls += 1
        return cost
