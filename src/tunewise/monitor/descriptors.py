"""Simple input descriptors and their signals: length, script (charset/language), empty inputs.

Lengths are counted in characters (the unit every source has); whitespace tokens are reported beside them. An input
is *non-Latin* when more than a fifth of its letters are outside the Latin script (another language's script, or a
charset problem such as mojibake).
"""

from __future__ import annotations

import dataclasses
import functools
import unicodedata

import numpy as np

from tunewise.monitor.record import SignalResult
from tunewise.monitor.stats import mann_whitney, proportion_difference_ci, relative_median_change, two_proportion_test

NON_LATIN_SHARE = 0.2
"""An input is non-Latin when more than this share of its letters are not Latin."""


@functools.lru_cache(maxsize=4096)
def _is_latin(char: str) -> bool:
    return unicodedata.name(char, "").startswith("LATIN")


def non_latin_share(text: str) -> float:
    """The share of ``text``'s letters outside the Latin script (0.0 when it has no letters)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum(not _is_latin(c) for c in letters) / len(letters)


def non_ascii_share(text: str) -> float:
    """The share of ``text``'s characters outside ASCII."""
    return sum(ord(c) > 127 for c in text) / len(text) if text else 0.0


def is_empty(text: str) -> bool:
    return not text.strip()


def rate_rise(
    name: str, group: str, reference: list[bool], window: list[bool], *, test: str = "two_proportion"
) -> SignalResult:
    """A signal on the rise of a rate: ``window share - reference share`` with a Newcombe CI and a two-sided test."""
    k1, n1, k2, n2 = sum(reference), len(reference), sum(window), len(window)
    low, high = proportion_difference_ci(k1, n1, k2, n2)
    return SignalResult(
        name=name,
        group=group,  # type: ignore[arg-type]
        effect=k2 / n2 - k1 / n1,
        ci_low=low,
        ci_high=high,
        p_value=two_proportion_test(k1, n1, k2, n2),
        test=test,
        reference_value=k1 / n1,
        window_value=k2 / n2,
        n_reference=n1,
        n_window=n2,
        detail={"reference_count": k1, "window_count": k2},
    )


def length_signal(
    name: str, group: str, reference: list[float], window: list[float], *, unit: str, bootstrap: int, seed: int
) -> SignalResult:
    """A signal on the change of a median length: relative change with a bootstrap CI, Mann-Whitney U p-value."""
    ref, win = np.asarray(reference, dtype=np.float64), np.asarray(window, dtype=np.float64)
    change, low, high = relative_median_change(ref, win, bootstrap=bootstrap, seed=seed)
    return SignalResult(
        name=name,
        group=group,  # type: ignore[arg-type]
        effect=change,
        ci_low=low,
        ci_high=high,
        p_value=mann_whitney(ref, win),
        test="mann_whitney_u",
        reference_value=float(np.median(ref)),
        window_value=float(np.median(win)),
        n_reference=len(ref),
        n_window=len(win),
        detail={"unit": unit},
    )


def input_signals(reference: list[str], window: list[str], *, bootstrap: int, seed: int) -> list[SignalResult]:
    """Length (characters), non-Latin inputs and empty inputs of the window against the reference.

    Raises:
        ValueError: an empty side.
    """
    if not reference or not window:
        raise ValueError("input signals need texts on both sides")
    length = length_signal(
        "input_length",
        "input",
        [len(t) for t in reference],
        [len(t) for t in window],
        unit="characters",
        bootstrap=bootstrap,
        seed=seed,
    )
    tokens = {
        "reference_median_tokens": float(np.median([len(t.split()) for t in reference])),
        "window_median_tokens": float(np.median([len(t.split()) for t in window])),
    }
    length = dataclasses.replace(length, detail={**length.detail, **tokens})
    latin = rate_rise(
        "non_latin",
        "input",
        [non_latin_share(t) > NON_LATIN_SHARE for t in reference],
        [non_latin_share(t) > NON_LATIN_SHARE for t in window],
    )
    ascii_shares = {
        "reference_non_ascii_chars": float(np.mean([non_ascii_share(t) for t in reference])),
        "window_non_ascii_chars": float(np.mean([non_ascii_share(t) for t in window])),
    }
    latin = dataclasses.replace(latin, detail={**latin.detail, **ascii_shares})
    empty = rate_rise("empty_inputs", "input", [is_empty(t) for t in reference], [is_empty(t) for t in window])
    return [length, latin, empty]
