"""The answer-likelihood knowledge probe: do the documents hold what the model lacks?

Generation metrics conflate two questions: whether the documents carry the facts the answers need, and whether
this model can turn passages into better answers. This probe answers the first without decoding: the
teacher-forced log-likelihood of each reference answer under three contexts,

- closed book: the example's own conversation;
- retrieved: the same conversation with the retriever's top-k passages (exactly what the RAG prompt shows);
- placebo: the same conversation with k *other* documents of the collection, drawn at random (seeded per example).

Retrieved vs closed book is the total gain of reading; retrieved vs placebo removes what any in-domain text gives
(vocabulary, style, a longer prompt) and leaves what the *specific* passages add: the knowledge the model lacks.
Gains are per-example means of nats per answer token, with paired bootstrap CIs, sized sequentially like the
other probes.
"""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np

from tunewise.config import ProbeSpec, Project
from tunewise.decide.record import AnswerLikelihood, ProbeRecord
from tunewise.errors import TunewiseError
from tunewise.examples import target_text
from tunewise.metrics.stats import mean_ci
from tunewise.records import Example
from tunewise.report.progress import ProgressDisplay
from tunewise.retrieval.index import load_or_build
from tunewise.retrieval.rag import query_text, with_passages

NAME = "answer likelihood"


def settled(result: AnswerLikelihood, min_gain: float, tolerance: float) -> bool:
    """The knowledge rule's answer can no longer change: a clear gain, or a CI that cannot reach ``min_gain``."""
    gain = result.gain_vs_placebo
    clear = gain.ci_low > 0 and gain.value >= min_gain
    return clear or gain.ci_high < min_gain or (gain.ci_high - gain.ci_low) / 2 <= tolerance


def likelihood_probe(
    project: Project, examples: list[Example], backend: Any, spec: ProbeSpec
) -> tuple[AnswerLikelihood | None, ProbeRecord]:
    """Score the reference answers closed-book, with retrieved and with placebo passages, on growing prefixes.

    Returns:
        The measured :class:`AnswerLikelihood` (``None`` when the probe could not run) and its record.
    """
    start = time.perf_counter()
    if not hasattr(backend, "answer_nll"):
        why = (
            f"model {getattr(backend, 'name', '?')!r} cannot score answers "
            "(needs a local model: no token log-probabilities)"
        )
        return None, ProbeRecord(name=NAME, candidates=[], n=0, seconds=0.0, stopped="skipped", error=why)

    assert project.spec.data.documents is not None
    rows: list[tuple[float, float, float]] = []
    cap = min(spec.max_examples, len(examples))
    result, stopped = None, ""
    display = ProgressDisplay("decide").start()
    scored = display.task(NAME, cap, rate_unit="ex")
    try:
        index = load_or_build(project.path(project.spec.data.documents), project.state_dir / "indexes", spec.retriever)
        ids = list(index.documents)
        k = min(spec.retrieval_k, len(ids) // 2)
        if k < 1:
            raise ValueError("the document collection needs at least two documents for a placebo")
        while len(rows) < cap:
            batch = examples[len(rows) : min(len(rows) + spec.chunk, cap)]
            for example in batch:
                hits = [doc for doc, _ in index.search(query_text(example), k)]
                taken = {doc.id for doc in hits}
                drawn = random.Random(f"placebo:{example.id}").sample(ids, k + len(taken))
                placebo = [index.documents[i] for i in drawn if i not in taken][:k]
                contexts = [list(example.messages), with_passages(example, hits), with_passages(example, placebo)]
                answer = target_text(example)
                scores = backend.answer_nll(contexts, [answer] * 3)
                rows.append(tuple(total / count for total, count in scores))  # type: ignore[arg-type]
                scored.advance()
            result = _summarise(np.asarray(rows))
            if settled(result, spec.min_nll_gain, spec.nll_ci_half_width):
                stopped = f"CIs settled at n={len(rows)}"
                break
        else:
            stopped = f"reached the cap of {cap} examples"
    except (TunewiseError, OSError, ValueError, RuntimeError) as exc:
        display.close(final=False)
        record = ProbeRecord(
            name=NAME,
            candidates=[],
            n=len(rows),
            seconds=time.perf_counter() - start,
            stopped="failed",
            error=f"{type(exc).__name__}: {exc}",
        )
        return None, record
    display.close()
    extra = result.to_dict() if result is not None else {}
    record = ProbeRecord(
        name=NAME,
        candidates=["closed book", "retrieved", "placebo"],
        n=len(rows),
        seconds=time.perf_counter() - start,
        stopped=stopped,
        extra=extra,
    )
    return result, record


def _summarise(nll: np.ndarray) -> AnswerLikelihood:
    closed, retrieved, placebo = nll[:, 0], nll[:, 1], nll[:, 2]
    return AnswerLikelihood(
        closed_book=float(closed.mean()),
        retrieved=float(retrieved.mean()),
        placebo=float(placebo.mean()),
        gain_vs_closed_book=mean_ci(closed - retrieved),
        gain_vs_placebo=mean_ci(placebo - retrieved),
        n=len(nll),
    )
