"""Constrained decoding reuses an unconstrained greedy decode only when the grammar admits all of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tunewise.models.base import GenerationConfig
from tunewise.models.constrained import grammar_admits
from tunewise.models.decode_memo import MAX_REMEMBERED, DecodeMemo
from tunewise.models.local import LocalBackend
from tunewise.records import Completion

SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "string"}},
    "required": ["total"],
    "additionalProperties": False,
}


def _done(text: str = "x", finish: str = "stop") -> Completion:
    return Completion(text, 10, 3, 5.0, finish)


def test_a_remembered_decode_is_reused_only_when_admitted_and_within_the_token_budget() -> None:
    memo = DecodeMemo()
    memo.remember([1, 2, 3], [7, 8], _done("seven eight"))
    assert memo.constrained([1, 2, 3], 160, lambda tokens: tokens == [7, 8]) == _done("seven eight")
    assert memo.constrained([1, 2, 3], 160, lambda tokens: False) is None
    assert memo.constrained([1, 2, 3], 2, lambda tokens: True) is None  # two tokens and the eos need three
    assert memo.constrained([1, 2], 160, lambda tokens: True) is None  # another prompt


def test_a_decode_cut_by_the_token_limit_is_never_reused() -> None:
    memo = DecodeMemo()
    memo.remember([1], [7], _done(finish="length"))
    assert memo.constrained([1], 160, lambda tokens: True) is None


def test_the_memo_forgets_the_oldest_decodes_past_its_bound() -> None:
    memo = DecodeMemo()
    for i in range(MAX_REMEMBERED + 1):
        memo.remember([i], [i], _done(str(i)))
    assert memo.constrained([0], 160, lambda tokens: True) is None
    assert memo.constrained([MAX_REMEMBERED], 160, lambda tokens: True) == _done(str(MAX_REMEMBERED))


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> LocalBackend:
    return LocalBackend(tiny_model_dir)


def _ids(backend: LocalBackend, text: str) -> list[int]:
    _, tokenizer = backend.load()
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_the_grammar_admits_a_whole_answer_only(backend: LocalBackend) -> None:
    _, tokenizer = backend.load()
    assert grammar_admits(tokenizer, SCHEMA, _ids(backend, '{"total": "1.50"}'))
    assert not grammar_admits(tokenizer, SCHEMA, _ids(backend, '{"total": "1.50"'))  # unfinished
    assert not grammar_admits(tokenizer, SCHEMA, _ids(backend, '{"total": "1.50", "tax": "0"}'))  # a key too many
    assert not grammar_admits(tokenizer, SCHEMA, _ids(backend, "TOTAL 1.50"))


def test_the_backend_returns_an_admitted_decode_without_generating_and_generates_the_rest(
    backend: LocalBackend,
) -> None:
    conversations = [[{"role": "user", "content": f"TOTAL {i}.50 RM"}] for i in range(2)]
    model, tokenizer = backend.load()
    prompts = [backend._prompt_ids(tokenizer, conversation) for conversation in conversations]
    answer = json.dumps({"total": "0.50"})
    # What the tiny random model would have to say for the shortcut to apply: remembered as its greedy decode.
    backend._decodes.remember(prompts[0], _ids(backend, answer), Completion(answer, len(prompts[0]), 6, 9.0))
    calls: list[Any] = []
    hook = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        first, second = backend.generate(conversations, GenerationConfig(max_new_tokens=24, json_schema=SCHEMA))
    finally:
        hook.remove()
    assert first.text == answer and first.latency_ms == 9.0
    assert calls  # the second prompt had nothing to reuse: it was generated under the grammar
    assert second.text.startswith('{"total": "')
