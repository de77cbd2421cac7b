"""Near-duplicate detection at scale: 100k rows built by perturbing real receipts and Banking77 texts.

Streams the rows through :func:`tunewise.data.dedup.stream_near_duplicates` (MinHash LSH, one signature per kept
row, no pairwise pass), then measures a naive all-pairs exact-Jaccard pass on a 2k-row sample of the same rows,
extrapolates its n² cost to the full size, and prints both with their ratio. On the sample it also reports the
LSH pass's recall and precision against the exact pairs.

Run:  flock /tmp/tunewise-cpu.lock python bench/dedup_scale.py [--rows 100000] [--sample 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path

from tunewise.data.dedup import exact_jaccard, shingles, stream_near_duplicates

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def base_texts() -> tuple[list[str], list[str]]:
    """The real rows: receipt OCR transcripts (long) and Banking77 customer messages (short)."""

    def read(*paths: Path) -> list[str]:
        texts = []
        for path in paths:
            with open(path, encoding="utf-8") as handle:
                texts += [json.loads(line)["text"] for line in handle if line.strip()]
        return texts

    receipts = read(DATA / "sroie" / "train.jsonl", DATA / "sroie" / "dev.jsonl")
    return receipts, read(DATA / "banking77" / "train.jsonl", DATA / "banking77" / "dev.jsonl")


def perturb(text: str, rng: random.Random) -> str:
    """Drop, duplicate, swap or replace a few words (0-15% of them): a near-duplicate or a fresh variant."""
    words = text.split()
    edits = rng.randint(0, max(1, int(len(words) * 0.15)))
    for _ in range(edits):
        if not words:
            break
        i = rng.randrange(len(words))
        op = rng.random()
        if op < 0.3:
            del words[i]
        elif op < 0.5:
            words.insert(i, words[i])
        elif op < 0.7 and len(words) > 1:
            j = rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
        else:
            words[i] = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(2, 8)))
    return " ".join(words)


def rows(bases: tuple[list[str], list[str]], n: int, seed: int) -> Iterator[tuple[str, str]]:
    """``n`` perturbed rows, half from receipts and half from Banking77, generated lazily (never all in memory)."""
    rng = random.Random(seed)
    for i in range(n):
        yield f"r{i}", perturb(rng.choice(bases[i % 2]), rng)


def naive_pairs(items: list[tuple[str, str]], threshold: float, shingle_size: int) -> set[tuple[str, str]]:
    """Every pair with exact Jaccard >= threshold, by comparing all n(n-1)/2 pairs."""
    sets = [(key, shingles(text, shingle_size)) for key, text in items]
    return {(a, b) for (a, sa), (b, sb) in combinations(sets, 2) if sa and sb and exact_jaccard(sa, sb) >= threshold}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=2_000)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--shingle-size", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    bases = base_texts()
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(bases[0])} receipts + {len(bases[1])} banking77 texts -> {args.rows} perturbed rows (half each)")
    start = time.perf_counter()
    found = sum(
        1
        for _ in stream_near_duplicates(
            rows(bases, args.rows, args.seed), threshold=args.threshold, shingle_size=args.shingle_size
        )
    )
    lsh_seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"LSH streaming pass: {args.rows} rows in {lsh_seconds:.1f} s ({args.rows / lsh_seconds:,.0f} rows/s), "
        f"{found} near-duplicates, peak RSS {peak_mb:.0f} MB ({baseline_mb:.0f} MB before the pass: the index holds "
        f"{(peak_mb - baseline_mb) * 1024 / max(args.rows - found, 1):.1f} KB per kept row)"
    )

    sample = list(rows(bases, args.sample, args.seed + 1))
    start = time.perf_counter()
    exact = naive_pairs(sample, args.threshold, args.shingle_size)
    naive_seconds = time.perf_counter() - start
    start = time.perf_counter()
    lsh_sample = list(stream_near_duplicates(sample, threshold=args.threshold, shingle_size=args.shingle_size))
    lsh_sample_seconds = time.perf_counter() - start
    scale = (args.rows / args.sample) ** 2
    naive_full = naive_seconds * scale
    print(
        f"naive all-pairs pass on {args.sample} rows: {naive_seconds:.1f} s "
        f"({args.sample * (args.sample - 1) // 2:,} pairs); "
        f"LSH on the same sample {lsh_sample_seconds:.2f} s"
    )
    print(
        f"naive pass extrapolated to {args.rows} rows (x{scale:,.0f}): {naive_full:,.0f} s = {naive_full / 3600:.1f} h"
    )
    print(f"ratio naive/LSH at {args.rows} rows: {naive_full / lsh_seconds:,.0f}x")
    in_exact = {frozenset(p) for p in exact}
    # A row "should" be flagged when an earlier row is its exact twin (the stream keeps the first of each group).
    order = {key: i for i, (key, _) in enumerate(sample)}
    should = {max(p, key=order.__getitem__) for p in exact}
    flagged = {d.id for d in lsh_sample}
    hits = sum(1 for d in lsh_sample if frozenset((d.id, d.twin)) in in_exact)
    print(
        f"on the sample: {len(exact)} exact pairs >= {args.threshold}, {len(should)} rows with an earlier twin; "
        "LSH flagged "
        f"{len(flagged)} rows: recall {len(flagged & should) / max(len(should), 1):.2f}, "
        f"twin confirmed by the exact pass {hits}/{len(flagged)}"
    )
    ok = lsh_seconds < 60
    print("PASS: under 60 s" if ok else "FAIL: over 60 s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
