"""Transcripts -> per-conversation, per-turn score matrices (conversations x probe turns), one per metric."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tunewise.persona.rollout import Transcript
from tunewise.persona.score import fact_f1, identifiability, uppercase_share, words
from tunewise.persona.script import Script


def probe_answers(transcripts: list[Transcript], turns: list[int]) -> list[str]:
    """Every probe answer, in (conversation, turn, probe) order: the order of :func:`score_matrices`' inputs."""
    return [answer for t in transcripts for turn in turns for answer in t.probes[str(turn)]]


def score_matrices(
    scripts: list[Script],
    transcripts: list[Transcript],
    turns: list[int],
    *,
    answer_vectors: np.ndarray,
    persona_vectors: np.ndarray,
    distractors: np.ndarray,
    contradiction: list[float] | None = None,
) -> dict[str, np.ndarray]:
    """The metrics of :data:`tunewise.persona.curve.DIRECTIONS` as ``(conversations, turns)`` arrays.

    Args:
        answer_vectors: the embeddings of :func:`probe_answers`, in its order.
        persona_vectors: one embedding per script's persona.
        distractors: ``(conversations, K)`` indices of each conversation's distractor personas.
        contradiction: the judge's verdicts in :func:`probe_answers` order, if a judge ran.
    """
    n, m = len(transcripts), len(turns)
    probes = len(transcripts[0].probes[str(turns[0])]) if transcripts else 0
    shape = (n, m, probes)
    own = np.repeat(persona_vectors[:, None, None, :], m * probes, axis=1).reshape(n * m * probes, -1)
    others = persona_vectors[distractors]  # (n, K, d)
    others = np.repeat(others[:, None, :, :], m * probes, axis=1).reshape(n * m * probes, *others.shape[1:])
    hit, rank = identifiability(answer_vectors, own, others)
    answers = probe_answers(transcripts, turns)
    f1 = np.array([fact_f1(a, scripts[i // (m * probes)].persona) for i, a in enumerate(answers)], dtype=np.float64)
    out = {
        "identifiability": hit.reshape(shape).mean(axis=2),
        "identifiability_rank": rank.reshape(shape).mean(axis=2),
        "fact_f1": f1.reshape(shape).mean(axis=2),
        "words": _main_line(transcripts, turns, lambda text: float(words(text))),
        "uppercase": _main_line(transcripts, turns, uppercase_share),
    }
    if contradiction is not None:
        out["contradiction"] = np.asarray(contradiction, dtype=np.float64).reshape(shape).mean(axis=2)
    return out


def _main_line(transcripts: list[Transcript], turns: list[int], measure: Callable[[str], float]) -> np.ndarray:
    """``measure`` of the main-line answer at each turn."""
    return np.array([[measure(t.answers[turn - 1]) for turn in turns] for t in transcripts], dtype=np.float64)
