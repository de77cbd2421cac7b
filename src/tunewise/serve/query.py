"""The main job's last step: a few held-out examples sent to the served model with the official ``openai`` client."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from tunewise.config import Project
from tunewise.examples import Example, target_text
from tunewise.metrics import MetricContext, metric_value, score_outputs
from tunewise.records import Record


@dataclass(frozen=True, kw_only=True)
class ServedQueries(Record):
    """What the served model answered to held-out examples, scored with the task's own metric."""

    model: str
    base_url: str
    n: int
    metric: str
    value: float | None
    """The task metric over these few examples (no CI: a smoke check of the served model, not an evaluation)."""
    json_valid: int | None
    """Answers that parse as JSON and validate against the task's schema (extract tasks)."""
    latency_ms_p50: float
    request_ids: list[str]
    log_path: Path | None
    answers: list[dict[str, str]]
    """``{"id", "output", "target"}`` per example."""

    def describe(self) -> str:
        valid = f", {self.json_valid}/{self.n} valid JSON" if self.json_valid is not None else ""
        value = f"{self.metric} {self.value:.3f}" if self.value is not None else f"{self.metric} n/a"
        return (
            f"served {self.model} answered {self.n} held-out examples through the openai client: {value}{valid}, "
            f"p50 latency {self.latency_ms_p50:.0f} ms (every request in {self.log_path})"
        )


def query_served(
    project: Project, base_url: str, model: str, examples: list[Example], *, log_path: Path | None = None
) -> ServedQueries:
    """Send each example's conversation to ``model`` at ``base_url`` (greedy) and score the answers."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="tunewise-local", max_retries=3, timeout=300)
    outputs, latencies, request_ids = [], [], []
    for example in examples:
        began = time.perf_counter()
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=example.messages, temperature=0, max_tokens=project.spec.eval.max_new_tokens
        )
        reply = raw.parse()
        latencies.append((time.perf_counter() - began) * 1000)
        request_ids.append(raw.headers.get("x-request-id", ""))
        outputs.append(reply.choices[0].message.content or "")
    context = MetricContext.from_project(project)
    metric = project.spec.primary_metric
    scores = [score for _, score in score_outputs(context, outputs, [e.target for e in examples])]
    valid = sum(1 for s in scores if s.get("schema_valid")) if project.spec.task.kind == "extract" else None
    return ServedQueries(
        model=model,
        base_url=base_url,
        n=len(examples),
        metric=metric,
        value=metric_value(context, scores, metric) if scores else None,
        json_valid=valid,
        latency_ms_p50=statistics.median(latencies) if latencies else 0.0,
        request_ids=request_ids,
        log_path=log_path,
        answers=[{"id": e.id, "output": o, "target": target_text(e)} for e, o in zip(examples, outputs, strict=True)],
    )
