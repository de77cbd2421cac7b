"""Run one candidate's conversations through its backend, reusing cached completions."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from tunewise.eval.cache import PredictionCache
from tunewise.models.base import Backend, GenerationConfig
from tunewise.records import Completion, Message


def generate_cached(
    backend: Backend,
    conversations: list[list[Message]],
    config: GenerationConfig,
    cache_dir: Path | None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Completion], float, int]:
    """Complete every conversation; return ``(completions, generation_wall_s, n_generated)``.

    Only conversations missing from the cache reach the backend; they are generated in chunks of a few batches
    and appended to the cache as they finish, so an interrupted evaluation resumes where it stopped. The wall
    time counts cached completions at the time they took when generated, so throughput figures stay honest.
    """
    cache = PredictionCache(cache_dir, backend.identity(), dataclasses.asdict(config)) if cache_dir else None
    results: list[Completion | None] = [None] * len(conversations)
    wall = 0.0
    for i, conversation in enumerate(conversations):
        hit = cache.get(conversation) if cache else None
        if hit is not None:
            results[i], share = hit
            wall += share
    missing = [i for i, r in enumerate(results) if r is None]
    if progress and len(missing) < len(conversations):
        progress(len(conversations) - len(missing))
    chunk = max(config.batch_size * 4, 1)
    for start in range(0, len(missing), chunk):
        indices = missing[start : start + chunk]
        batch = [conversations[i] for i in indices]
        began = time.perf_counter()
        completions = backend.generate(batch, config, progress)
        elapsed = time.perf_counter() - began
        wall += elapsed
        if cache:
            cache.put_many(batch, completions, elapsed)
        for i, completion in zip(indices, completions, strict=True):
            results[i] = completion
    return [r for r in results if r is not None], wall, len(missing)
