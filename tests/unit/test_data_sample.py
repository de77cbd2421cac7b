"""Diversity sampling for a labelling budget (a deterministic stand-in embedder; the real one in integration)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tunewise.data.sample import budget_rows, kmeans, sample_file, sample_rows, select_diverse
from tunewise.errors import InputError

CLUSTERS = 8


def fake_embed(texts: list[str]) -> np.ndarray:
    """Text ``c<k> ...`` -> unit vector near axis k, with a small per-text offset."""
    out = np.zeros((len(texts), CLUSTERS + 4))
    for i, text in enumerate(texts):
        out[i, int(text.split()[0][1:])] = 1.0
        noise = np.frombuffer(hashlib.sha256(text.encode()).digest()[:4], dtype=np.uint8) / 2550.0
        out[i, CLUSTERS:] = noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def pool(sizes: list[int]) -> list[str]:
    return [f"c{k} item {j}" for k, size in enumerate(sizes) for j in range(size)]


# Skewed pool: one big cluster, seven small ones. A random sample mostly lands in the big one.
TEXTS = pool([300] + [6] * (CLUSTERS - 1))


@pytest.mark.parametrize("method", ["kmeans++", "farthest"])
def test_diverse_selection_covers_clusters(method: str) -> None:
    vectors = fake_embed(TEXTS)
    chosen = select_diverse(vectors, CLUSTERS, seed=0, method=method)
    covered = {TEXTS[i].split()[0] for i in chosen}
    assert len(chosen) == CLUSTERS and len(set(chosen)) == CLUSTERS
    assert len(covered) >= CLUSTERS - (0 if method == "farthest" else 1)
    assert chosen == select_diverse(vectors, CLUSTERS, seed=0, method=method)


def test_sample_rows_reports_coverage_against_random() -> None:
    result = sample_rows(
        TEXTS, [str(i) for i in range(len(TEXTS))], CLUSTERS, embed=fake_embed, seed=0, method="farthest"
    )
    assert result.clusters == CLUSTERS and result.covered == CLUSTERS
    assert result.random_covered < result.covered


def test_kmeans_recovers_separated_clusters() -> None:
    labels = kmeans(fake_embed(TEXTS), CLUSTERS, seed=0)
    truth = [int(t.split()[0][1:]) for t in TEXTS]
    pairs = set(zip(truth, labels.tolist(), strict=True))
    assert len(pairs) == CLUSTERS  # one-to-one


def test_select_more_than_pool_and_unknown_method() -> None:
    vectors = fake_embed(pool([2, 1]))
    assert sorted(select_diverse(vectors, 10)) == [0, 1, 2]
    with pytest.raises(ValueError):
        select_diverse(vectors, 2, method="random")


def test_budget_rows() -> None:
    assert budget_rows(100, 30.0, 0.5) == 60
    assert budget_rows(None, 10.0, 3.0) == 3
    assert budget_rows(5, None, 1.0) == 5
    with pytest.raises(InputError):
        budget_rows(None, None, 1.0)
    with pytest.raises(InputError):
        budget_rows(5, None, 0)


def test_sample_file_writes_labelling_jsonl(tmp_path: Path) -> None:
    src = tmp_path / "pool.jsonl"
    src.write_text("".join(json.dumps({"id": f"p{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    out = tmp_path / "to_label.jsonl"
    result = sample_file(src, out, 5, embed=fake_embed, seed=2)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == result.ids and [r["_rank"] for r in rows] == list(range(5))
    assert all("_cluster" in r and r["text"] for r in rows)
    src.write_text(json.dumps({"id": "x", "text": ""}) + "\n")
    with pytest.raises(InputError, match=r"pool.jsonl:1: text: missing or empty text"):
        sample_file(src, out, 1, embed=fake_embed)
