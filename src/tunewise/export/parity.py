"""Parity of an exported artifact with the adapter it came from: logits on a few prompts, and the task metric.

Merged models that silently degrade are a known failure (Unsloth #1558): a wrong merge, a dtype slip, a tokenizer
that changed in conversion, a quantization that erases a small fine-tune. Each artifact is compared with the
reference (base + adapter, fp32) on

- **logits**: teacher-forced forward passes over a few full conversations (prompt + answer): max and mean
  |Δlogit| and how often the top-1 token agrees;
- **the task**: greedy generation on N dev examples through the eval harness: the task metric of both, its
  delta with a paired test, and how many outputs are identical.

Each kind of artifact has tolerances (fp32 merge: tight; f16 and q8_0 GGUF: looser); any breach fails the export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.config import CandidateSpec, ModelSpec, Project
from tunewise.eval import evaluate
from tunewise.io.atomic import atomic_write_text
from tunewise.io.jsonl import read_jsonl
from tunewise.records import EvalSummary, Message, Record
from tunewise.report.page import render_page, write_report

REFERENCE = "adapter"


@dataclass(frozen=True)
class Tolerance(Record):
    """How far an artifact may drift from the adapter before the export fails."""

    max_abs_logit: float
    min_top1_agreement: float
    max_metric_drop: float


DEFAULT_TOLERANCES = {
    "merged": Tolerance(max_abs_logit=1e-3, min_top1_agreement=0.99, max_metric_drop=0.02),
    "f32": Tolerance(max_abs_logit=1e-3, min_top1_agreement=0.99, max_metric_drop=0.02),
    "f16": Tolerance(max_abs_logit=0.5, min_top1_agreement=0.98, max_metric_drop=0.02),
    "bf16": Tolerance(max_abs_logit=2.0, min_top1_agreement=0.95, max_metric_drop=0.05),
    "q8_0": Tolerance(max_abs_logit=6.0, min_top1_agreement=0.9, max_metric_drop=0.05),
}


@dataclass(frozen=True)
class LogitParity(Record):
    """Teacher-forced logits of an artifact against the reference over the same token ids."""

    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    prompts: int
    positions: int


@dataclass(frozen=True)
class TaskParity(Record):
    """The task metric of an artifact and of the reference on the same dev examples."""

    metric: str
    reference: float
    value: float
    delta: float
    p_value: float | None
    identical_outputs: int
    n: int


@dataclass(frozen=True, kw_only=True)
class GgufChecks(Record):
    """A GGUF file reloaded with transformers: what it is, whether its tokenizer and chat template are the adapter's,
    and its logits against the merged model (what quantization alone changed)."""

    file_sha256: str
    bytes: int
    tokenizer_matches: bool
    """The GGUF tokenizer splits the parity conversations into the same token ids."""
    chat_template_matches: bool
    file_type: int | None
    """``general.file_type`` of the GGUF header."""
    vs_merged: LogitParity


@dataclass(frozen=True, kw_only=True)
class ArtifactParity(Record):
    """One exported artifact's parity and verdict (built by :func:`judge_artifact`)."""

    name: str
    kind: str
    path: str
    logits: LogitParity | None
    task: TaskParity | None
    tolerance: Tolerance
    failures: list[str]
    """Every breach, as a sentence with its numbers."""
    details: GgufChecks | None = None
    """GGUF artifacts only."""
    passed: bool
    """No failures (stored, so that ``parity.json`` states the verdict)."""


@dataclass(frozen=True, kw_only=True)
class ParityReport(Record):
    """Every artifact of one export against its adapter (built by :func:`parity_report`)."""

    adapter_dir: str
    base_model: str
    artifacts: list[ArtifactParity]
    passed: bool
    """Every artifact passed."""


def judge_artifact(
    *,
    name: str,
    kind: str,
    path: str,
    logits: LogitParity | None,
    task: TaskParity | None,
    tolerance: Tolerance,
    gguf: GgufChecks | None = None,
    template_expected: bool = False,
) -> ArtifactParity:
    """An artifact's parity with its verdict: the tolerance breaches, and for a GGUF a tokenizer or (when the
    adapter's tokenizer has one, ``template_expected``) chat template that differs."""
    failures = verdict(logits, task, tolerance)
    if gguf is not None:
        if not gguf.tokenizer_matches:
            failures.append("the GGUF tokenizer splits the parity prompts differently")
        if template_expected and not gguf.chat_template_matches:
            failures.append("the GGUF chat template differs from the tokenizer's")
    return ArtifactParity(
        name=name,
        kind=kind,
        path=path,
        logits=logits,
        task=task,
        tolerance=tolerance,
        failures=failures,
        details=gguf,
        passed=not failures,
    )


def parity_report(adapter_dir: str, base_model: str, artifacts: list[ArtifactParity]) -> ParityReport:
    return ParityReport(
        adapter_dir=adapter_dir, base_model=base_model, artifacts=artifacts, passed=all(a.passed for a in artifacts)
    )


def parity_token_ids(tokenizer: Any, conversations: list[list[Message]]) -> list[list[int]]:
    """Render full conversations (answers included) with the chat template and tokenize them."""
    ids = []
    for conversation in conversations:
        text = tokenizer.apply_chat_template(conversation, tokenize=False)
        ids.append(list(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return ids


def forward_logits(model: Any, token_ids: list[list[int]]) -> list[Any]:
    """Logits ``(seq, vocab)`` in fp32 on CPU for each sequence, one unpadded forward pass each."""
    import torch

    out = []
    with torch.inference_mode():
        for ids in token_ids:
            logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0]
            out.append(logits.float().cpu())
    return out


def compare_logits(reference: list[Any], candidate: list[Any]) -> LogitParity:
    """Max / mean |Δlogit| and top-1 agreement over every position of every sequence."""
    import torch

    diffs = [(c - r).abs() for r, c in zip(reference, candidate, strict=True)]
    positions = sum(d.shape[0] for d in diffs)
    agree = sum(int((r.argmax(-1) == c.argmax(-1)).sum()) for r, c in zip(reference, candidate, strict=True))
    return LogitParity(
        max_abs_diff=float(max(d.max() for d in diffs)),
        mean_abs_diff=float(torch.cat([d.flatten() for d in diffs]).mean()),
        top1_agreement=agree / positions,
        prompts=len(diffs),
        positions=positions,
    )


def task_parity(
    project: Project,
    reference: ModelSpec,
    artifacts: dict[str, ModelSpec],
    *,
    limit: int,
    out_dir: Path,
    progress: bool = True,
) -> tuple[dict[str, TaskParity], EvalSummary]:
    """Evaluate the reference and every artifact on the first ``limit`` dev examples with the eval harness.

    Returns:
        Task parity per artifact name, and the evaluation summary (its run directory is ``out_dir``).
    """

    models = {f"export:{REFERENCE}": reference, **{f"export:{name}": spec for name, spec in artifacts.items()}}
    candidates = [CandidateSpec(name=REFERENCE, model=f"export:{REFERENCE}")]
    candidates += [CandidateSpec(name=name, model=f"export:{name}") for name in artifacts]
    summary = evaluate(
        project,
        split="dev",
        limit=limit,
        out=out_dir,
        candidates=candidates,
        extra_models=models,
        track=False,
        progress=progress,
    )
    outputs: dict[str, dict[str, str]] = {}
    for _, row in read_jsonl(out_dir / "predictions.jsonl"):
        outputs.setdefault(row["candidate"], {})[row["id"]] = row["output"]
    metric = summary.primary_metric
    ref_value = summary.candidate(REFERENCE).metrics[metric].value
    results = {}
    for name in artifacts:
        value = summary.candidate(name).metrics[metric].value
        comparison = next(
            (c for c in summary.comparisons if c.metric == metric and {c.a, c.b} == {REFERENCE, name}), None
        )
        same = sum(outputs[name].get(i) == text for i, text in outputs[REFERENCE].items())
        results[name] = TaskParity(
            metric=metric,
            reference=ref_value,
            value=value,
            delta=value - ref_value,
            p_value=comparison.p_value if comparison is not None else None,
            identical_outputs=same,
            n=summary.n_examples,
        )
    return results, summary


def verdict(logits: LogitParity | None, task: TaskParity | None, tolerance: Tolerance) -> list[str]:
    """The tolerance breaches, as sentences with the numbers (empty: the artifact passes)."""
    failures = []
    if logits is not None:
        if logits.max_abs_diff > tolerance.max_abs_logit:
            failures.append(f"max |Δlogit| {logits.max_abs_diff:.3g} > {tolerance.max_abs_logit:g}")
        if logits.top1_agreement < tolerance.min_top1_agreement:
            failures.append(f"top-1 agreement {logits.top1_agreement:.3f} < {tolerance.min_top1_agreement:g}")
    if task is not None and -task.delta > tolerance.max_metric_drop:
        failures.append(
            f"{task.metric} dropped {-task.delta:.3f} ({task.reference:.3f} -> {task.value:.3f}) "
            f"> {tolerance.max_metric_drop:g}"
        )
    return failures


def write_parity(report: ParityReport, out_dir: Path) -> None:
    """``parity.json``, ``parity.md`` and ``parity.html`` in the export directory, each atomically."""
    atomic_write_text(out_dir / "parity.json", json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    write_report(out_dir, render_parity_markdown(report), render_page("parity.html", report=report), stem="parity")


def render_parity_markdown(report: ParityReport) -> str:
    """A table per artifact: logits and task parity against the adapter, and the verdict."""
    return render_page("parity.md.j2", report=report)
