"""Exact and near-duplicate detection: hashes of the normalised input, and MinHash LSH over word shingles.

Near-duplicate search streams: each row is compared only with the candidates LSH returns for it, so the cost is
about linear in the number of rows and memory holds one signature (``num_perm`` 32-bit values) per kept row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from datasketch import MinHash, MinHashLSH

from tunewise.data.normalize import input_hash, input_text, normalize_text
from tunewise.records import Example, Record


@dataclass(frozen=True)
class Duplicate(Record):
    """``id`` repeats ``twin`` (kept); ``similarity`` is 1.0 for exact duplicates, else the estimated Jaccard
    (to 4 decimals)."""

    id: str
    twin: str
    similarity: float
    kind: Literal["exact", "near"]


def shingles(text: str, size: int) -> set[str]:
    """Word ``size``-grams of the normalised text; a text shorter than ``size`` words is one shingle."""
    words = normalize_text(text).split(" ")
    if words == [""]:
        return set()
    if len(words) <= size:
        return {" ".join(words)}
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def _hash32(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=4).digest(), "little")


def exact_jaccard(a: set[str], b: set[str]) -> float:
    """|a ∩ b| / |a ∪ b| (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class NearDupIndex:
    """MinHash LSH over word shingles, holding one signature per added key.

    Args:
        threshold: estimated Jaccard similarity at or above which two texts are near-duplicates.
        shingle_size: words per shingle.
        num_perm: MinHash permutations.
        seed: MinHash seed (fixed, so results are reproducible).
    """

    def __init__(self, threshold: float = 0.8, *, shingle_size: int = 3, num_perm: int = 128, seed: int = 1) -> None:
        self.threshold = threshold
        self.shingle_size = shingle_size
        self.num_perm = num_perm
        self._template = MinHash(num_perm=num_perm, seed=seed, hashfunc=_hash32, scheme="affine32")
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._signatures: dict[str, np.ndarray] = {}
        self._order: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._signatures)

    def signature(self, text: str) -> MinHash | None:
        """The MinHash of a text, or ``None`` when it has no words."""
        grams = shingles(text, self.shingle_size)
        if not grams:
            return None
        minhash = self._template.copy()
        minhash.update_batch([g.encode("utf-8") for g in grams])
        return minhash

    def add(self, key: str, minhash: MinHash) -> None:
        """Index ``minhash`` under ``key`` (keys must be unique)."""
        self._lsh.insert(key, minhash, check_duplication=False)
        self._signatures[key] = minhash.hashvalues.copy()
        self._order[key] = len(self._order)

    def query(self, minhash: MinHash) -> list[tuple[str, float]]:
        """Indexed keys whose estimated Jaccard with ``minhash`` reaches the threshold, most similar first
        (ties: earliest added first)."""
        found = []
        for key in self._lsh.query(minhash):
            similarity = float(np.mean(self._signatures[key] == minhash.hashvalues))
            if similarity >= self.threshold:
                found.append((key, similarity))
        found.sort(key=lambda kv: (-kv[1], self._order[kv[0]]))
        return found


def stream_near_duplicates(
    items: Iterable[tuple[str, str]], *, threshold: float = 0.8, shingle_size: int = 3, num_perm: int = 128
) -> Iterator[Duplicate]:
    """Yield a :class:`Duplicate` for every ``(key, text)`` that nearly repeats an earlier kept one.

    The first of each group is kept and indexed; later members are reported with their twin and not indexed.
    """
    index = NearDupIndex(threshold, shingle_size=shingle_size, num_perm=num_perm)
    for key, text in items:
        minhash = index.signature(text)
        if minhash is None:
            continue
        twins = index.query(minhash)
        if twins:
            yield Duplicate(key, twins[0][0], round(twins[0][1], 4), "near")
        else:
            index.add(key, minhash)


def find_exact_duplicates(examples: Iterable[Example]) -> list[Duplicate]:
    """Rows whose normalised input equals an earlier row's; the earlier one is the twin."""
    first: dict[str, str] = {}
    found = []
    for example in examples:
        digest = input_hash(example)
        if digest in first:
            found.append(Duplicate(example.id, first[digest], 1.0, "exact"))
        else:
            first[digest] = example.id
    return found


def find_near_duplicates(
    examples: Iterable[Example], *, threshold: float = 0.8, shingle_size: int = 3, num_perm: int = 128
) -> list[Duplicate]:
    """Near-duplicate inputs among ``examples`` (in order; the first of each group is kept)."""
    items = ((e.id, input_text(e)) for e in examples)
    return list(stream_near_duplicates(items, threshold=threshold, shingle_size=shingle_size, num_perm=num_perm))
