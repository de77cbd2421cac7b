"""Replay scripts turn by turn: the model answers on top of its own earlier answers, probed at fixed turns.

Conversations run in waves of the backend's width (llama.cpp's parallel slots, the local batch size): at each turn
one batched call carries every conversation of the wave plus its probe branches. On llama.cpp a conversation's next
request extends the prompt its slot has cached, so only the new turn is processed (prefix caching).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tunewise.io.jsonl import read_jsonl, write_jsonl
from tunewise.models.base import Backend, GenerationConfig
from tunewise.persona.context import TokenCounter, fit_context
from tunewise.persona.script import Script
from tunewise.records import Message, Record


@dataclass(frozen=True)
class Transcript(Record):
    """What one candidate said in one conversation."""

    id: str
    answers: list[str]
    """The main line: the answer to each user turn, turn 1 first."""
    probes: dict[str, list[str]]
    """Probe turn (as text, JSON keys) -> the answer to each probe question, asked in a branch at that turn."""
    dropped_exchanges: int = 0
    """Oldest exchanges dropped to fit the context (the most at any turn); 0: never truncated."""
    cut_by_length: int = 0
    """Answers stopped by ``max_new_tokens``."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    """Wall time of this conversation's wave divided by the conversations in it."""


@dataclass(frozen=True)
class RolloutPlan:
    turns: int
    probe_turns: list[int]
    probes: list[str]
    max_new_tokens: int
    context_tokens: int


def wave_size(backend: Backend, batch_size: int) -> int:
    """Conversations run together: llama.cpp's slots (one cached prefix each), else the local batch size."""
    return int(getattr(backend, "parallel", 0) or batch_size)


def roll_out(
    backend: Backend,
    scripts: list[Script],
    plan: RolloutPlan,
    *,
    batch_size: int,
    store: Path,
    on_conversation: Callable[[int], None] | None = None,
) -> list[Transcript]:
    """Every script's transcript, in order; those already in ``store`` (a JSONL) are reused, new ones appended.

    Raises:
        InputError: a user turn does not fit in the context with the system prompt (naming the turn).
        BackendError: the backend failed.
    """
    done = load_transcripts(store)
    pending = [s for s in scripts if s.id not in done]
    if on_conversation is not None and len(scripts) > len(pending):
        on_conversation(len(scripts) - len(pending))
    count = TokenCounter(backend.count_tokens)
    width = wave_size(backend, batch_size)
    for start in range(0, len(pending), width):
        wave = pending[start : start + width]
        for transcript in _run_wave(backend, wave, plan, count):
            done[transcript.id] = transcript
        write_jsonl(store, [done[s.id].to_dict() for s in scripts if s.id in done])
        if on_conversation is not None:
            on_conversation(len(wave))
    return [done[s.id] for s in scripts]


def _run_wave(backend: Backend, wave: list[Script], plan: RolloutPlan, count: TokenCounter) -> list[Transcript]:
    config = GenerationConfig(max_new_tokens=plan.max_new_tokens, batch_size=len(wave))
    budget = plan.context_tokens - plan.max_new_tokens
    histories: list[list[Message]] = [list(s.system) for s in wave]
    answers: list[list[str]] = [[] for _ in wave]
    probes: list[dict[str, list[str]]] = [{} for _ in wave]
    dropped = [0] * len(wave)
    cut = [0] * len(wave)
    prompt_tokens = [0] * len(wave)
    completion_tokens = [0] * len(wave)
    probe_turns = set(plan.probe_turns)
    start = time.perf_counter()
    for turn in range(1, plan.turns + 1):
        requests: list[list[Message]] = []
        owners: list[tuple[int, int | None]] = []  # (conversation, probe index or None for the main line)
        for index, script in enumerate(wave):
            asks = [(None, script.user_turns[turn - 1])]
            if turn in probe_turns:
                asks += list(enumerate(plan.probes))
            for probe, text in asks:
                where = f"{script.source or script.id}: turn {turn}" + (" (probe)" if probe is not None else "")
                messages, lost = fit_context(
                    [*histories[index], {"role": "user", "content": text}], budget, count, where=where
                )
                dropped[index] = max(dropped[index], lost)
                requests.append(messages)
                owners.append((index, probe))
        completions = backend.generate(requests, config)
        for (index, probe), completion in zip(owners, completions, strict=True):
            prompt_tokens[index] += completion.prompt_tokens
            completion_tokens[index] += completion.completion_tokens
            cut[index] += completion.finish_reason == "length"
            text = completion.text.strip()
            if probe is None:
                answers[index].append(text)
                asked = {"role": "user", "content": wave[index].user_turns[turn - 1]}
                histories[index] = [*histories[index], asked, {"role": "assistant", "content": text}]
            else:
                probes[index].setdefault(str(turn), []).append(text)
    seconds = (time.perf_counter() - start) / len(wave)
    return [
        Transcript(
            id=script.id,
            answers=answers[i],
            probes=probes[i],
            dropped_exchanges=dropped[i],
            cut_by_length=cut[i],
            prompt_tokens=prompt_tokens[i],
            completion_tokens=completion_tokens[i],
            seconds=seconds,
        )
        for i, script in enumerate(wave)
    ]


def load_transcripts(store: Path) -> dict[str, Transcript]:
    if not store.is_file():
        return {}
    return {row["id"]: Transcript.from_dict(row) for _, row in read_jsonl(store)}
