"""Retrieval: documents validation, BM25 (1-char tokens), dense, RRF, persisted index, recall@k, the rag prompt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tunewise.errors import InputError
from tunewise.records import Example
from tunewise.retrieval import build_index, load_documents, load_or_build, recall_at_k, reciprocal_rank_fusion
from tunewise.retrieval.bm25 import tokenize
from tunewise.retrieval.dense import DenseIndex

DOCS = [
    {"id": "d1", "title": "Store 7", "text": "Store 7 opens at nine and sells apples."},
    {"id": "d2", "title": "Store 8", "text": "Store 8 opens at ten and sells pears."},
    {"id": "d3", "text": "Vitamin B deficiency causes fatigue in adults."},
    {"id": "d4", "text": "The 1973 oil crisis began in October."},
]


def bag_embed(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in for the sentence model: hashed bag of words, unit-normalised."""
    vectors = np.zeros((len(texts), 64), dtype=np.float32)
    for row, text in enumerate(texts):
        for token in tokenize(text):
            vectors[row, sum(map(ord, token)) % 64] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def write_docs(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_load_documents_reads_ids_titles(tmp_path: Path) -> None:
    docs = load_documents(write_docs(tmp_path / "d.jsonl", DOCS))
    assert [d.id for d in docs] == ["d1", "d2", "d3", "d4"]
    assert docs[0].indexed_text.startswith("Store 7\n") and docs[2].title == ""


@pytest.mark.parametrize(
    ("rows", "line", "field"),
    [
        ([{"id": "a", "text": "x"}, {"id": "b"}], 2, "text"),
        ([{"text": "x"}], 1, "id"),
        ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], 2, "id"),
        ([{"id": "a", "text": "x", "title": 3}], 1, "title"),
        ([{"id": "a", "text": "   "}], 1, "text"),
    ],
)
def test_malformed_documents_name_file_line_field(tmp_path: Path, rows: list[dict], line: int, field: str) -> None:
    path = write_docs(tmp_path / "d.jsonl", rows)
    with pytest.raises(InputError) as info:
        load_documents(path)
    assert info.value.line == line and info.value.field == field and str(path) in str(info.value)


def test_empty_collection_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="empty"):
        load_documents(path)


def test_bm25_keeps_single_character_tokens(tmp_path: Path) -> None:
    index = build_index(load_documents(write_docs(tmp_path / "d.jsonl", DOCS)), "bm25")
    assert [d.id for d, _ in index.search("store 7", 1)] == ["d1"]
    assert [d.id for d, _ in index.search("vitamin b", 1)] == ["d3"]
    assert index.search("zzz qqq", 2) == []


def test_dense_search_orders_by_cosine() -> None:
    index = DenseIndex.build(["a", "b"], ["apples and pears", "oil crisis october"], bag_embed)
    assert [i for i, _ in index.search("oil crisis", 2)] == ["b", "a"]


def test_rrf_scores_and_ties() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "a", "d"]], k=60)
    assert [i for i, _ in fused[:2]] in (["a", "b"], ["b", "a"])
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert [i for i, _ in fused[2:]] == ["c", "d"]  # equal scores keep first appearance
    assert reciprocal_rank_fusion([["x"], ["y", "x"]], top=1)[0][0] == "x"
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], k=0)


def test_index_persists_and_reloads(tmp_path: Path) -> None:
    path = write_docs(tmp_path / "d.jsonl", DOCS)
    first = load_or_build(path, tmp_path / "idx", "hybrid", embed=bag_embed, embedder_name="bag")
    second = load_or_build(path, tmp_path / "idx", "hybrid", embed=bag_embed, embedder_name="bag")
    assert first.meta["reloaded"] is False and second.meta["reloaded"] is True
    assert first.directory == second.directory and (first.directory / "dense_vectors.npy").is_file()
    assert [d.id for d, _ in first.search("oil crisis 1973", 2)] == [
        d.id for d, _ in second.search("oil crisis 1973", 2)
    ]
    assert second.search("oil crisis 1973", 1)[0][0].id == "d4"
    write_docs(path, DOCS[:2])  # an edited collection gets a new index
    third = load_or_build(path, tmp_path / "idx", "hybrid", embed=bag_embed, embedder_name="bag")
    assert third.directory != first.directory and len(third.documents) == 2


def test_recall_at_k() -> None:
    assert recall_at_k([["a", "b"], ["c"], ["d"]], [{"b"}, {"x"}, set()]) == 0.5
    with pytest.raises(ValueError):
        recall_at_k([["a"]], [set()])


def test_rag_prompt_puts_passages_before_the_question(tmp_path: Path) -> None:
    from tunewise.retrieval.rag import HEADER, rag_messages

    index = build_index(load_documents(write_docs(tmp_path / "d.jsonl", DOCS)), "bm25")
    example = Example(
        "q1", [{"role": "system", "content": "Answer."}, {"role": "user", "content": "When does store 7 open?"}], "nine"
    )
    messages, ids = rag_messages(example, index, 2)
    assert ids[0] == "d1" and len(ids) == 2
    assert messages[0] == example.messages[0]
    assert messages[1]["content"].startswith(HEADER) and messages[1]["content"].endswith("When does store 7 open?")
    assert "[1] Store 7\nStore 7 opens at nine" in messages[1]["content"]
    assert example.messages[1]["content"] == "When does store 7 open?"  # the example itself is untouched
