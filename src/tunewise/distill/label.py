"""Labelling: every input's teacher conversation sent once, through the cache, the journal and the spend cap.

An endpoint teacher (``OpenAIBackend``) gets one request per input, ``concurrency`` in flight, each reserved against
the caps just before it is sent; a request that still fails after the backend's retries marks its input as failed
(tried again by the next run), never the run. A local teacher labels in batches, as it evaluates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from tunewise.distill.journal import Journal
from tunewise.distill.spend import CapReached, Reservation, SpendLedger
from tunewise.errors import BackendError
from tunewise.eval.cache import PredictionCache, stable_hash
from tunewise.models.base import Backend, GenerationConfig
from tunewise.models.openai import OpenAIBackend
from tunewise.records import Completion, Message


@dataclass(frozen=True)
class LabelJob:
    """One input to label: its id and the conversation the teacher sees."""

    id: str
    conversation: list[Message]


@dataclass
class LabelRun:
    """What a labelling pass produced: completions and failures by input id, and how it got them."""

    completions: dict[str, Completion] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    """id -> why the teacher gave nothing (after the backend's retries)."""
    pending: list[str] = field(default_factory=list)
    """Ids not sent because a cap was reached."""
    cap_message: str | None = None
    sent: int = 0
    """Requests sent in this pass (re-sent in-doubt ones included)."""
    resumed: int = 0
    """Inputs found done in the journal of an earlier, interrupted pass."""
    cached: int = 0
    """Inputs answered from the teacher cache (another run had labelled them): nothing sent, nothing paid."""
    in_doubt_resent: int = 0
    wall_s: float = 0.0


def call_key(identity: dict[str, object], config: GenerationConfig, conversation: list[Message]) -> str:
    """The content address of one teacher call: who answers, how it decodes, and the rendered prompt."""
    generation = {"max_new_tokens": config.max_new_tokens, "json_schema": config.json_schema}
    return stable_hash({"identity": identity, "generation": generation, "conversation": conversation})


def label_all(
    backend: Backend,
    jobs: list[LabelJob],
    config: GenerationConfig,
    *,
    journal: Journal,
    cache: PredictionCache | None,
    ledger: SpendLedger,
    concurrency: int,
    progress: Callable[[int], None] | None = None,
) -> LabelRun:
    """Label every job not labelled yet; stop cleanly at a cap.

    Raises:
        BackendError: a local teacher fails (an endpoint's failure only marks its input).
    """
    began = time.perf_counter()
    identity = backend.identity()
    keys = {job.id: call_key(identity, config, job.conversation) for job in jobs}
    state = journal.replay()
    paid = [c for c, _, cached in state.done.values() if not cached]
    ledger.restore(state.usd, sum(c.prompt_tokens + c.completion_tokens for c in paid), len(paid))
    run = LabelRun()
    todo: list[LabelJob] = []
    hits: list[tuple[str, str, Completion]] = []
    for job in jobs:
        key = keys[job.id]
        if key in state.done:
            run.completions[job.id] = state.done[key][0]
            run.resumed += 1
            if cache is not None and cache.get(job.conversation) is None:  # killed between journal and cache
                cache.put_many([job.conversation], [state.done[key][0]], 0.0)
            continue
        hit = cache.get(job.conversation) if cache is not None else None
        if hit is not None:
            hits.append((key, job.id, hit[0]))
            run.completions[job.id] = hit[0]
            run.cached += 1
            continue
        todo.append(job)
    journal.cached(hits)
    if progress is not None and len(todo) < len(jobs):
        progress(len(jobs) - len(todo))
    labelling = _Pass(keys, state.in_doubt, config, journal, cache, ledger, concurrency, run, progress)
    if isinstance(backend, OpenAIBackend):
        labelling.send_each(backend, todo)
    else:
        labelling.send_batches(backend, todo)
    run.wall_s = time.perf_counter() - began
    return run


@dataclass
class _Pass:
    """What sending the remaining jobs of one labelling pass shares, whichever way the teacher takes them."""

    keys: dict[str, str]
    in_doubt: set[str]
    config: GenerationConfig
    journal: Journal
    cache: PredictionCache | None
    ledger: SpendLedger
    concurrency: int
    run: LabelRun
    progress: Callable[[int], None] | None

    def _sent(self, job: LabelJob) -> None:
        key = self.keys[job.id]
        self.journal.sent(key, job.id)
        self.run.sent += 1
        self.run.in_doubt_resent += key in self.in_doubt

    def _capped(self, capped: CapReached, remaining: list[LabelJob]) -> None:
        self.run.cap_message = str(capped)
        self.run.pending = [job.id for job in remaining]

    def send_each(self, backend: OpenAIBackend, todo: list[LabelJob]) -> None:
        """One request per job, ``concurrency`` in flight, each reserved against the caps just before it leaves."""
        slots = threading.Semaphore(self.concurrency)
        lock = threading.Lock()
        run, ledger, journal = self.run, self.ledger, self.journal

        def call(job: LabelJob, reservation: Reservation) -> None:
            key = self.keys[job.id]
            try:
                try:
                    completion = backend.complete(job.conversation, self.config, idempotency_key=key)
                except BackendError as error:
                    ledger.settle(reservation, None, None)
                    journal.failed(key, job.id, str(error))
                    with lock:
                        run.failures[job.id] = str(error)
                    return
                cost = ledger.settle(reservation, completion.prompt_tokens, completion.completion_tokens)
                journal.done(key, job.id, completion, cost)  # the journal first: it alone holds what was paid
                with lock:  # one writer at a time: a long completion's line must not interleave with another's
                    if self.cache is not None:
                        share = completion.latency_ms / 1000 / self.concurrency
                        self.cache.put_many([job.conversation], [completion], share)
                    run.completions[job.id] = completion
            finally:
                slots.release()
                if self.progress is not None:
                    self.progress(1)

        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="tunewise-teacher")
        futures: list[Future[None]] = []
        try:
            for index, job in enumerate(todo):
                slots.acquire()
                try:
                    reservation = ledger.reserve(job.conversation)
                except CapReached:
                    slots.release()
                    for future in futures:  # what is in flight may settle below its worst case: wait, retry once
                        future.result()
                    try:
                        reservation = ledger.reserve(job.conversation)
                    except CapReached as capped:
                        self._capped(capped, todo[index:])
                        break
                    slots.acquire()
                self._sent(job)
                futures.append(pool.submit(call, job, reservation))
            for future in futures:
                future.result()
        finally:
            pool.shutdown(wait=True)

    def send_batches(self, backend: Backend, todo: list[LabelJob]) -> None:
        """Chunks of a few batches through ``generate``, as a local model evaluates."""
        chunk = max(self.config.batch_size * 4, self.concurrency, 1)
        for start in range(0, len(todo), chunk):
            batch = todo[start : start + chunk]
            reservations = []
            for index, job in enumerate(batch):
                try:
                    reservations.append(self.ledger.reserve(job.conversation))
                except CapReached as capped:
                    self._capped(capped, todo[start + index :])
                    batch = batch[:index]
                    break
            for job in batch:
                self._sent(job)
            if batch:
                began = time.perf_counter()
                completions = backend.generate([job.conversation for job in batch], self.config, self.progress)
                elapsed = time.perf_counter() - began
                for job, completion, reservation in zip(batch, completions, reservations, strict=True):
                    cost = self.ledger.settle(reservation, completion.prompt_tokens, completion.completion_tokens)
                    self.journal.done(self.keys[job.id], job.id, completion, cost)
                    self.run.completions[job.id] = completion
                if self.cache is not None:
                    self.cache.put_many([job.conversation for job in batch], completions, elapsed)
            if self.run.cap_message is not None:
                return
