"""Prompt strategies: k-shot with similar shots picks the nearest train inputs and embeds the pool once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tunewise.embeddings
from tunewise.config import CandidateSpec, Project, project_from_dict
from tunewise.eval.prompts import PromptContext, _embed_pool, get_prompt
from tunewise.records import Example
from tunewise.retrieval.rag import HEADER


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


def _documents_project(tmp_path: Path) -> Project:
    docs = [
        {"id": "d1", "title": "Store 7", "text": "Store 7 opens at nine and sells apples."},
        {"id": "d2", "title": "Store 8", "text": "Store 8 opens at ten and sells pears."},
    ]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    spec = {
        "name": "p",
        "task": {"kind": "classify", "labels": ["a", "x"]},
        "data": {"dev": "d.jsonl", "documents": "docs.jsonl"},
    }
    return project_from_dict(spec, tmp_path)


def test_k_shot_rag_keeps_the_shots_and_puts_the_passages_in_the_last_user_turn(tmp_path: Path) -> None:
    project = _documents_project(tmp_path)
    train = [_example("1", "xxyy", "x"), _example("2", "aaab", "a")]
    query = _example("q", "When does store 7 open?", "a")
    candidate = CandidateSpec(name="c", prompt="k_shot_rag", k=2, retriever="bm25", retrieval_k=1)
    context = PromptContext(project, candidate, train)
    messages = get_prompt("k_shot_rag")(query, context)
    shots = get_prompt("k_shot")(query, PromptContext(project, candidate, train))
    assert messages[:-1] == shots[:-1] and [m["role"] for m in messages].count("assistant") == 2  # the shots, as is
    last = messages[-1]
    assert last["role"] == "user" and last["content"].startswith(HEADER)
    assert "[1] Store 7\nStore 7 opens at nine" in last["content"] and last["content"].endswith(
        query.messages[-1]["content"]
    )
    assert sum(HEADER in m["content"] for m in messages) == 1  # the shots carry no passages
    assert context.state["retrieved"] == {"q": ["d1"]}
    assert query.messages[-1]["content"] == "When does store 7 open?"  # the example itself is untouched


def test_rag_without_shots_is_unchanged_whatever_k_says(tmp_path: Path) -> None:
    project = _documents_project(tmp_path)
    query = _example("q", "When does store 8 open?", "a")
    train = [_example("1", "xxyy", "x")]
    messages = get_prompt("rag")(query, PromptContext(project, CandidateSpec(name="c", prompt="rag", k=3), train))
    assert [m["role"] for m in messages] == ["system", "user"] and messages[-1]["content"].startswith(HEADER)
