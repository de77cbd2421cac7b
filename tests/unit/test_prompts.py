"""Prompt strategies: k-shot with similar shots picks the nearest train inputs and embeds the pool once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tunewise.embeddings
from tunewise.config import CandidateSpec, project_from_dict
from tunewise.eval.prompts import PromptContext, _embed_pool, get_prompt
from tunewise.records import Example


def _example(id_: str, text: str, label: str) -> Example:
    return Example(
        id=id_, messages=[{"role": "system", "content": "S"}, {"role": "user", "content": text}], target=label
    )


def _letters(texts: list[str]) -> np.ndarray:
    vectors = np.array([[t.count(ch) for ch in "abcxyz"] for t in texts], dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_similar_shots_are_nearest_and_the_pool_is_embedded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def embed(texts: list[str], **_: object) -> np.ndarray:
        calls.append(len(texts))
        return _letters(texts)

    monkeypatch.setattr(tunewise.embeddings, "embed_texts", embed)
    _embed_pool.cache_clear()
    project = project_from_dict(
        {"name": "p", "task": {"kind": "classify", "labels": ["a", "x"]}, "data": {"dev": "d.jsonl"}}, tmp_path
    )
    train = [
        _example("1", "aaab", "a"),
        _example("2", "xxxy", "x"),
        _example("3", "abab", "a"),
        _example("q", "xxyy", "x"),
    ]
    candidate = CandidateSpec(name="c", prompt="k_shot", k=1, shot_selection="similar")
    strategy = get_prompt("k_shot")
    query = train[3]
    for _ in range(2):  # two evaluations, each with a fresh context
        messages = strategy(query, PromptContext(project, candidate, train))
        assert messages == [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "xxxy"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": "xxyy"},
        ]
    assert calls.count(len(train)) == 1  # the pool once; then one query embedding per example
    _embed_pool.cache_clear()


@pytest.mark.parametrize("selection", ["similar", "random"])
def test_a_shot_never_is_the_input_or_its_exact_twin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, selection: str
) -> None:
    monkeypatch.setattr(tunewise.embeddings, "embed_texts", lambda texts, **_: _letters(texts))
    _embed_pool.cache_clear()
    project = project_from_dict(
        {"name": "p", "task": {"kind": "classify", "labels": ["a", "x"]}, "data": {"dev": "d.jsonl"}}, tmp_path
    )
    train = [_example("1", "xxyy", "x"), _example("2", "  XXYY ", "a"), _example("3", "aaab", "a")]
    candidate = CandidateSpec(name="c", prompt="k_shot", k=2, shot_selection=selection)  # type: ignore[arg-type]
    messages = get_prompt("k_shot")(train[0], PromptContext(project, candidate, train))
    shown = [m["content"] for m in messages if m["role"] == "user"][:-1]
    assert shown == ["aaab"]  # neither the input itself nor its twin (same text, other id, other label)
    _embed_pool.cache_clear()
