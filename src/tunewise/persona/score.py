"""Scores of one probe answer against its persona: identifiability, fact coverage, style; and the judge's verdict.

- **identifiability**: the answer's sentence embedding against its own persona and ``K`` distractor personas.
  ``hit`` is 1 when its own persona is the nearest; ``rank`` is the share of distractors it is nearer to than to its
  own (1: nearest, 0.5: chance).
- **fact_f1**: token F1 (content words) between the answer and its best-matching persona line.
- style, on the main-line answers: ``words`` and ``uppercase`` (share of letters in upper case) beside the
  persona's own reference turns.
"""

from __future__ import annotations

import re

import numpy as np

_WORD = re.compile(r"[a-z0-9']+")
_STOP_WORDS = """a an the and or but if of to in on at for with from by about as is am are was were be been being i me
my mine you your we our they them their he she it its his her this that these those do does did have has had so not no
just very really too also can will would what how who there here"""
_STOP = frozenset(_STOP_WORDS.split())


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def token_f1(answer: str, reference: str) -> float:
    a, r = content_words(answer), content_words(reference)
    if not a or not r:
        return 0.0
    common = sum(min(a.count(w), r.count(w)) for w in set(a))
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)


def fact_f1(answer: str, persona: list[str]) -> float:
    """Token F1 of ``answer`` against its best-matching persona line."""
    return max((token_f1(answer, line) for line in persona), default=0.0)


def identifiability(
    answer_vectors: np.ndarray, own: np.ndarray, distractors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(hit, rank)`` per answer.

    Args:
        answer_vectors: ``(n, d)`` unit vectors of the answers.
        own: ``(n, d)`` unit vectors of each answer's own persona.
        distractors: ``(n, K, d)`` unit vectors of each answer's distractor personas.
    """
    own_sim = np.einsum("nd,nd->n", answer_vectors, own)
    other_sim = np.einsum("nd,nkd->nk", answer_vectors, distractors)
    hit = (own_sim[:, None] > other_sim).all(axis=1).astype(np.float64)
    rank = ((own_sim[:, None] > other_sim) + 0.5 * (own_sim[:, None] == other_sim)).mean(axis=1)
    return hit, rank


def words(text: str) -> int:
    return len(text.split())


def uppercase_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(c.isupper() for c in letters) / len(letters) if letters else 0.0


def distractor_indices(personas: list[list[str]], k: int, seed: int) -> np.ndarray:
    """For each conversation, ``k`` other conversations whose personas (not equal to its own) are its distractors.

    Raises:
        ValueError: fewer than ``k`` other personas for some conversation.
    """
    keys = [tuple(" ".join(line.lower().split()) for line in persona) for persona in personas]
    rng = np.random.default_rng(seed)
    rows = []
    for i, key in enumerate(keys):
        others = np.array([j for j, other in enumerate(keys) if other != key])
        if len(others) < k:
            raise ValueError(f"{k} distractor personas needed, only {len(others)} differ from conversation {i}'s")
        rows.append(rng.choice(others, size=k, replace=False))
    return np.stack(rows)
