"""``tunewise data sample``: choose which unlabelled rows to label, spread over the input space.

Rows are embedded (the embedded MiniLM by default), then chosen by k-means++ seeding (each next row drawn with
probability proportional to its squared distance to the rows already chosen) or farthest-point selection.
Coverage is measured against k-means clusters of the pool and compared with a random sample of the same size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tunewise import embeddings
from tunewise.errors import InputError
from tunewise.io.jsonl import read_jsonl, write_jsonl
from tunewise.io.outputs import check_output_file
from tunewise.records import Record

Embedder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True, kw_only=True)
class SampleResult(Record):
    """The chosen rows (pool indices, in selection order) and how many pool clusters they cover."""

    indices: list[int]
    ids: list[str]
    clusters: int
    covered: int
    random_covered: int
    """Clusters a random sample of the same size covers (the baseline)."""
    cluster_of: list[int]
    """The cluster of every pool row."""


def _sq_dist(vectors: np.ndarray, point: np.ndarray) -> np.ndarray:
    return np.maximum(((vectors - point) ** 2).sum(axis=1), 0.0)


def select_diverse(vectors: np.ndarray, n: int, *, seed: int = 0, method: str = "kmeans++") -> list[int]:
    """Indices of ``n`` rows spread over ``vectors``.

    Args:
        method: ``kmeans++`` (greedy D² sampling: spread out, yet rarely an outlier) or ``farthest``
            (greedy k-center: maximal spread, picks outliers first).

    Raises:
        ValueError: an unknown method.
    """
    if method not in ("kmeans++", "farthest"):
        raise ValueError(f"unknown sampling method {method!r} (expected kmeans++ or farthest)")
    total = len(vectors)
    n = min(n, total)
    if n <= 0:
        return []
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(total))]
    nearest = _sq_dist(vectors, vectors[chosen[0]])
    # Greedy k-means++ (as in scikit-learn): draw a few D²-weighted candidates, keep the one that lowers the
    # total distance most; plain D² sampling too often puts two picks in one big cluster.
    trials = 2 + int(np.log(max(n, 2)))
    while len(chosen) < n:
        if nearest.sum() <= 0:  # only exact repeats of chosen rows are left
            taken = set(chosen)
            pick = next(i for i in range(total) if i not in taken)
            new_nearest = np.minimum(nearest, _sq_dist(vectors, vectors[pick]))
        elif method == "farthest":
            pick = int(np.argmax(nearest))
            new_nearest = np.minimum(nearest, _sq_dist(vectors, vectors[pick]))
        else:
            candidates = rng.choice(total, size=trials, p=nearest / nearest.sum())
            options = [np.minimum(nearest, _sq_dist(vectors, vectors[c])) for c in candidates]
            best = int(np.argmin([o.sum() for o in options]))
            pick, new_nearest = int(candidates[best]), options[best]
        chosen.append(pick)
        nearest = new_nearest
    return chosen


def kmeans(vectors: np.ndarray, k: int, *, seed: int = 0, iterations: int = 25) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; returns the cluster of each row."""
    k = min(k, len(vectors))
    centres = vectors[select_diverse(vectors, k, seed=seed)].copy()
    labels = np.zeros(len(vectors), dtype=int)
    for step in range(iterations):
        distances = (
            ((vectors[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
            if len(vectors) * k < 4_000_000
            else _chunked(vectors, centres)
        )
        new = distances.argmin(axis=1)
        if step > 0 and np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):
            members = vectors[labels == c]
            if len(members):
                centres[c] = members.mean(axis=0)
    return labels


def _chunked(vectors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    # ||v - c||² = ||v||² - 2 v·c + ||c||², without the (n, k, d) intermediate.
    return (vectors**2).sum(1)[:, None] - 2 * vectors @ centres.T + (centres**2).sum(1)[None, :]


def sample_rows(
    texts: list[str],
    ids: list[str],
    n: int,
    *,
    embed: Embedder | None = None,
    seed: int = 0,
    method: str = "kmeans++",
    clusters: int | None = None,
) -> SampleResult:
    """Choose ``n`` of ``texts`` to label and measure cluster coverage (``clusters`` default: ``n``)."""
    vectors = np.asarray((embed or embeddings.embed_texts)(texts), dtype=np.float64)
    chosen = select_diverse(vectors, n, seed=seed, method=method)
    labels = kmeans(vectors, clusters or max(len(chosen), 1), seed=seed)
    random_pick = np.random.default_rng(seed + 1).choice(len(texts), size=len(chosen), replace=False) if chosen else []
    return SampleResult(
        indices=chosen,
        ids=[ids[i] for i in chosen],
        clusters=int(labels.max()) + 1 if len(labels) else 0,
        covered=len({int(labels[i]) for i in chosen}),
        random_covered=len({int(labels[i]) for i in random_pick}),
        cluster_of=[int(c) for c in labels],
    )


def budget_rows(n: int | None, budget: float | None, cost_per_row: float) -> int:
    """How many rows to label: ``n``, capped by ``budget / cost_per_row`` when a budget is given.

    Raises:
        InputError: neither n nor budget is given, or the cost is not positive.
    """
    if cost_per_row <= 0:
        raise InputError("must be positive", field="cost_per_row")
    if n is None and budget is None:
        raise InputError("give the number of rows (n) or a labelling budget", field="n")
    from_budget = int(budget // cost_per_row) if budget is not None else None
    return min(x for x in (n, from_budget) if x is not None)


def sample_file(
    pool: str | Path,
    out: str | Path,
    n: int,
    *,
    text_field: str = "text",
    id_field: str = "id",
    embed: Embedder | None = None,
    seed: int = 0,
    method: str = "kmeans++",
) -> SampleResult:
    """Read an unlabelled JSONL pool, choose ``n`` rows, write them (with their cluster) to a labelling JSONL.

    Raises:
        InputError: a pool row lacks its text, or the pool is empty.
    """
    pool = Path(pool)
    check_output_file(out)  # before the pool is embedded
    rows, texts, ids = [], [], []
    for line, row in read_jsonl(pool):
        text = row.get(text_field)
        if not isinstance(text, str) or not text.strip():
            raise InputError("missing or empty text", file=pool, line=line, field=text_field)
        rows.append(row)
        texts.append(text)
        ids.append(str(row.get(id_field, f"{pool.stem}-{line}")))
    if not rows:
        raise InputError("no rows in the pool", file=pool)
    result = sample_rows(texts, ids, n, embed=embed, seed=seed, method=method)
    write_jsonl(
        out, ({**rows[i], "_cluster": result.cluster_of[i], "_rank": rank} for rank, i in enumerate(result.indices))
    )
    return result
